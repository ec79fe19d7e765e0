"""Reading a chaos run's directory (tests/chaos/checker.py and its checks):
JSON-lines files that a SIGKILL may have cut short, the events' timestamps,
the keys as events and log spans write them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

PREFIX = "triggeredCache"


def load(path: Path) -> list[dict]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut short by a SIGKILL
    return out


def at_ms(text: str | None) -> int:
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def pk_of(key) -> str:
    return str((key or {}).get("pk", ""))


def span_key(line: dict) -> str:
    k = (line.get("span") or {}).get("key", "")
    return k[3:] if k.startswith("pk=") else k
