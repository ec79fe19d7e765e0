"""The checks behind scripts/deploy/verify.py, one module per concern."""
