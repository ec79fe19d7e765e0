#!/usr/bin/env python3
"""Checks of the deploy artifacts, for scripts/verify-deploy.sh.

Runs in the project venv .venv-deploy/ (PyYAML, botocore/boto3, cfn-lint,
cloudcoil-models-keda). Each subcommand prints what it checked and exits 1
with every problem it found. Paths are relative to the repository root,
which is where verify-deploy.sh runs this from. The checks live in
checks/, one module per concern: common (paths, placeholders, the problem
list), k8s, iam, aws (ECS, CloudFormation), image.

  verify.py render TEMPLATE [--vars FILE.json]   ${NAME} placeholders -> stdout
  verify.py split-k8s RENDERED CORE_OUT           core kinds for kubernetes-validate
  verify.py k8s RENDERED                          Deployment/PSS/probes/PDB/... checks
  verify.py keda RENDERED [--queue-url U --region R]
  verify.py hpa RENDERED
  verify.py dockerfile                            pinned base images, contract
  verify.py iam-actions ACTIONS.json              deploy/iam grants exactly the code's
                                                  actions (`triggered-cache iam-actions`; - for stdin)
  verify.py ecs                                   botocore input shapes + semantics
  verify.py cfn-static                            template properties
  verify.py cfn-emulator ENDPOINT OUT_DIR         create the stacks in moto, check
"""


from __future__ import annotations

import argparse
import sys

from checks import aws, common, iam, image, k8s

COMMANDS = {
    "render": common.cmd_render,
    "split-k8s": k8s.cmd_split_k8s,
    "k8s": k8s.cmd_k8s,
    "keda": k8s.cmd_keda,
    "hpa": k8s.cmd_hpa,
    "k8s-config": k8s.cmd_k8s_config,
    "dockerfile": image.cmd_dockerfile,
    "iam-actions": iam.cmd_iam_actions,
    "ecs": aws.cmd_ecs,
    "cfn-static": aws.cmd_cfn_static,
    "cfn-emulator": aws.cmd_cfn_emulator,
    "standin-runtime": image.cmd_standin_runtime,
    "wait-http": image.cmd_wait_http,
    "image-inspect": image.cmd_image_inspect,
    "check-logs": image.cmd_check_logs,
    "env-file": image.cmd_env_file,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("render")
    s.add_argument("template")
    s.add_argument("--vars")
    s = sub.add_parser("split-k8s")
    s.add_argument("rendered")
    s.add_argument("core_out")
    s = sub.add_parser("k8s")
    s.add_argument("rendered")
    s = sub.add_parser("keda")
    s.add_argument("rendered")
    s.add_argument("--queue-url")
    s.add_argument("--region")
    s = sub.add_parser("hpa")
    s.add_argument("rendered")
    sub.add_parser("dockerfile")
    s = sub.add_parser("iam-actions")
    s.add_argument("actions", help="the output of `triggered-cache iam-actions`, or - for stdin")
    sub.add_parser("ecs")
    sub.add_parser("cfn-static")
    s = sub.add_parser("cfn-emulator")
    s.add_argument("endpoint")
    s.add_argument("out_dir")
    s = sub.add_parser("standin-runtime")
    s.add_argument("rootfs")
    s.add_argument("out")
    s = sub.add_parser("wait-http")
    s.add_argument("url")
    s.add_argument("--status", type=int, default=200)
    s.add_argument("--contains")
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("--show", type=int, default=300)
    s = sub.add_parser("image-inspect")
    s.add_argument("inspect_json")
    s = sub.add_parser("check-logs")
    s.add_argument("log")
    s = sub.add_parser("env-file")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--task-definition")
    g.add_argument("--overlay")
    s = sub.add_parser("k8s-config")
    s.add_argument("rendered")
    args = ap.parse_args()
    return COMMANDS[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
