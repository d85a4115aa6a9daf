"""Offline CLI: `python -m infra render|check|diff --stack <name> ...`.

Runs the Pulumi program under mocks (no engine, no cloud, no cluster). Each subcommand lives in
its own module, which adds its arguments with `configure_parser(parser)` and sets `handler`, a
function from the parsed arguments to the exit code.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "render": (
        "infra.offline.render",
        "write the stack's desired state as files, one per resource",
    ),
    "check": (
        "infra.offline.check.cli",
        "run the policy pack over a stack or Kubernetes manifests; exit 1 if mandatory fails",
    ),
    "diff": (
        "infra.offline.diff.cli",
        "compare the desired state at a git ref with the working tree",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        importlib.import_module(module).configure_parser(command)
    args = parser.parse_args(argv)
    return args.handler(args)
