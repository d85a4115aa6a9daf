"""Offline CLI: `python -m infra render|check|diff --stack <name> ...`.

Runs the Pulumi program under mocks (no engine, no cloud, no cluster). Each subcommand lives in
its own module, which adds its arguments with `configure_parser(parser)` and sets `handler`, a
function from the parsed arguments to the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "render": "write the stack's desired state as files, one per resource",
    "check": "run the policy pack over a stack or Kubernetes manifests; exit 1 if mandatory fails",
    "diff": "compare the desired state at a git ref with the working tree",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in COMMANDS.items():
        module = importlib.import_module(f"infra.offline.{name}")
        module.configure_parser(commands.add_parser(name, help=summary, description=summary))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
