# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the linters, over the Dockerfile
# (hadolint), the YAML (yamllint) and, with checkov, the Dockerfile, the
# CloudFormation stack and the manifests that scripts/deploy/k8s.sh renders.
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

hadolint_step() {
    "$STATE/bin/hadolint" --config .hadolint.yaml Dockerfile
    helper dockerfile
}

yamllint_step() {
    "$STATE/bin/yamllint" --strict --config-file .yamllint deploy/ .yamllint .hadolint.yaml scripts/deploy/checkov.yaml
    log "yamllint: no findings"
}

checkov_step() {
    mkdir -p "$WORK/checkov"
    cp "$WORK/k8s/example.yaml" "$WORK/k8s/example-hpa.yaml" "$WORK/checkov/"
    "$STATE/bin/checkov" --config-file scripts/deploy/checkov.yaml \
        -f Dockerfile -f deploy/aws/triggered-cache.yaml \
        -f "$WORK/checkov/example.yaml" -f "$WORK/checkov/example-hpa.yaml"
}
