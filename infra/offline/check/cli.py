"""`python -m infra check --stack NAME | --manifests DIR [--policy-config FILE] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.offline.check.manifests import check_manifests
from infra.offline.check.programs import check_stack
from infra.offline.check.report import CheckError
from stacks import SettingsError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="dev, staging or production: run that stack's program")
    parser.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="check the Kubernetes YAML files under DIR (or one file) instead of a program",
    )
    parser.add_argument(
        "--policy-config",
        type=Path,
        metavar="FILE",
        help="a --policy-pack-config file (default: policies/config/<stack>.json with --stack, "
        "else every policy at its default level)",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    if args.stack is None and args.manifests is None:
        print("check needs --stack NAME or --manifests DIR", file=sys.stderr)
        return 2
    try:
        if args.manifests is not None:
            report = check_manifests(
                args.manifests, stack=args.stack, pack_config=args.policy_config
            )
        else:
            report = check_stack(args.stack, pack_config=args.policy_config)
    except CheckError as error:
        print(f"check: {error}", file=sys.stderr)
        return 2
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return report.exit_code
