"""Offline CLI: `python -m infra render --stack <name> [--out DIR]`.

Runs the Pulumi program under mocks (no engine, no cloud, no cluster) and writes the desired
state, one file per resource. `check` and `diff` are reserved for the policy pack and preview diffs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stacks import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write the stack's desired state as files")
    render.add_argument("--stack", required=True, help="dev, staging or production")
    render.add_argument("--out", type=Path, default=Path("render"), help="default: ./render")
    for reserved in ("check", "diff"):
        commands.add_parser(reserved, help="not implemented yet")
    args = parser.parse_args(argv)

    if args.command != "render":
        print(f"python -m infra {args.command}: not implemented yet", file=sys.stderr)
        return 2
    from infra.render import render_stack

    try:
        written = render_stack(args.stack, args.out)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"no stack file: {error.filename}", file=sys.stderr)
        return 1
    print(f"rendered {len(written)} files into {args.out / args.stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
