"""`python -m infra check --stack NAME | --manifests PATH [--policy-config FILE]
[--format text|markdown|json]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.offline.check.report import CheckError, error_json, error_markdown
from infra.offline.output import emit, wants_colour
from infra.offline.stack_files import UnknownStackError

FORMATS = ("text", "markdown", "json")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "exit codes: 0 no mandatory violation, 1 at least one, 2 the check could not run "
        '(with --format json, stdout then holds {"error": ..., "exit_code": 2})'
    )
    parser.add_argument("--stack", help="dev, staging or production: run that stack's program")
    parser.add_argument(
        "--manifests",
        type=Path,
        metavar="PATH",
        help="check the Kubernetes YAML file PATH, or every .yaml/.yml file under it, instead "
        "of a program",
    )
    parser.add_argument(
        "--policy-config",
        type=Path,
        metavar="FILE",
        help="a --policy-pack-config file (default: policies/config/<stack>.json with --stack, "
        "else every policy at its default level)",
    )
    parser.add_argument(
        "--no-preview",
        dest="preview",
        action="store_false",
        help="check the stack as the update of `pulumi up` does, every value known (default: as "
        "a first `pulumi preview`, with what the engine does not know yet unknown)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text for a terminal (coloured on a TTY unless NO_COLOR is set), markdown for a "
        "pull-request comment, json for machines (default: text)",
    )
    output.add_argument(
        "--json", dest="format", action="store_const", const="json", help="--format json"
    )
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    if args.stack is None and args.manifests is None:
        return _failed(args, "check needs --stack NAME or --manifests PATH")
    try:
        if args.manifests is not None:
            from infra.offline.check.early import packs_for_manifests

            # The packs boot on the other core while gRPC and the SDK are imported here.
            with packs_for_manifests(args.manifests, args.stack) as started:
                from infra.offline.check.manifests import check_manifests

                report = check_manifests(
                    args.manifests,
                    stack=args.stack,
                    pack_config=args.policy_config,
                    started=started,
                )
        else:
            # Imported here: the stack settings (pydantic) cost a checking of manifests a
            # quarter of a second, and only a program can raise SettingsError.
            from infra.offline.check.programs import check_stack
            from stacks import SettingsError

            try:
                report = check_stack(
                    args.stack, pack_config=args.policy_config, preview=args.preview
                )
            except SettingsError as error:
                return _failed(args, str(error), prefix="")
    except UnknownStackError as error:
        return _failed(args, str(error), prefix="")
    except CheckError as error:
        return _failed(args, str(error))
    if args.format == "json":
        emit(json.dumps(report.to_json(), indent=2))
    elif args.format == "markdown":
        emit(report.to_markdown())
    else:
        emit(report.to_text(colour=wants_colour()))
    return report.exit_code


def _failed(args: argparse.Namespace, message: str, prefix: str = "check: ") -> int:
    """The check could not run: the message on stderr, and on stdout a document of the format
    asked for, so a consumer of stdout always gets one."""
    emit(f"{prefix}{message}", sys.stderr)
    if args.format == "json":
        emit(json.dumps(error_json(message), indent=2))
    elif args.format == "markdown":
        target = f"`{args.manifests}`" if args.manifests is not None else f"stack `{args.stack}`"
        emit(error_markdown(message, target))
    return 2
