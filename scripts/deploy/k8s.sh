# shellcheck shell=bash
# Sourced by scripts/verify-deploy.sh: the Kubernetes checks. kustomize
# renders the base and the overlays into $WORK/k8s/ (the later steps, checkov
# and the image's config check among them, read them from there); then
# schemas, policy (restricted PSS, probes, shutdown, PDB, HPA) and KEDA.
# It only defines functions and settings; scripts/verify-deploy.sh sets ROOT,
# STATE, PY, WORK, WITH_IMAGE and the other settings these use, and runs each
# *_step function as one step (scripts/deploy/steps.sh).

OVERLAYS=(example example-hpa)

kustomize_step() {
    mkdir -p "$WORK/k8s"
    "$STATE/bin/kubectl" kustomize deploy/k8s/base >"$WORK/k8s/base.yaml"
    local o
    for o in "${OVERLAYS[@]}"; do
        "$STATE/bin/kubectl" kustomize "deploy/k8s/overlays/$o" >"$WORK/k8s/$o.yaml"
        log "$o: $(grep -c '^kind:' "$WORK/k8s/$o.yaml") resources: $(grep '^kind:' "$WORK/k8s/$o.yaml" | cut -d' ' -f2 | tr '\n' ' ')"
    done
}

k8s_validate_step() {
    local o k rc=0
    for o in base "${OVERLAYS[@]}"; do
        helper split-k8s "$WORK/k8s/$o.yaml" "$WORK/k8s/$o.core.yaml"
        for k in 1.30.0 1.37.0; do
            # A kind without a schema is only a warning to kubernetes-validate:
            # here it fails (the KEDA kinds were split off for their own check).
            "$STATE/bin/kubernetes-validate" --strict --quiet -k "$k" "$WORK/k8s/$o.core.yaml" >"$WORK/kv.out" 2>&1 || rc=1
            if [[ -s "$WORK/kv.out" ]]; then
                cat "$WORK/kv.out"
                rc=1
            fi
        done
        [[ "$rc" == 0 ]] && log "$o: valid against Kubernetes 1.30 and 1.37 (strict)"
    done
    return "$rc"
}

k8s_policy_step() {
    local o rc=0
    for o in "${OVERLAYS[@]}"; do
        helper k8s "$WORK/k8s/$o.yaml" || rc=1
    done
    helper hpa "$WORK/k8s/example-hpa.yaml" || rc=1
    return "$rc"
}

keda_step() {
    helper keda "$WORK/k8s/example.yaml"
    # The trigger follows the overlay's values (kustomize replacements): render
    # a copy of the tree whose overlay names another queue and region.
    local copy="$WORK/k8s-copy" url="https://sqs.eu-west-1.amazonaws.com/210987654321/other-requests"
    rm -rf "$copy" && mkdir -p "$copy" && cp -r deploy/k8s "$copy/"
    sed -i -e "s#TRIGGERED_CACHE__SQS__QUEUE_URL=.*#TRIGGERED_CACHE__SQS__QUEUE_URL=$url#" \
        -e 's#TRIGGERED_CACHE__AWS__REGION=.*#TRIGGERED_CACHE__AWS__REGION=eu-west-1#' \
        "$copy/k8s/overlays/example/kustomization.yaml"
    "$STATE/bin/kubectl" kustomize "$copy/k8s/overlays/example" >"$WORK/k8s/example-other.yaml"
    helper keda "$WORK/k8s/example-other.yaml" --queue-url "$url" --region eu-west-1
}
