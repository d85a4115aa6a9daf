"""`python -m infra diff --stack NAME --base REF | --base-dir DIR [--format text|markdown|json]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.offline.diff.formats import FORMATS
from infra.offline.diff.model import DiffError
from infra.offline.diff.worktree import diff_dir, diff_ref
from infra.offline.output import emit

EXIT_NO_CHANGES = 0
EXIT_ERROR = 2
EXIT_CHANGES = 3


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "exit codes: 0 no changes, 3 changes, 2 error (unknown stack or ref, a side that fails "
        "to render)"
    )
    parser.add_argument(
        "--stack",
        action="append",
        required=True,
        help="dev, staging or production; repeat for several stacks",
    )
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", help="git ref to compare with (origin/main, a tag, a commit)")
    base.add_argument(
        "--base-dir",
        type=Path,
        help="an already rendered base (the --out of `python -m infra render`)",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="text")
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    stacks = list(dict.fromkeys(args.stack))
    try:
        if args.base is not None:
            diffs, label = diff_ref(stacks, args.base), args.base
        else:
            diffs, label = diff_dir(stacks, args.base_dir), str(args.base_dir)
    except DiffError as error:
        emit(f"diff: {error}", sys.stderr)
        return EXIT_ERROR
    emit(FORMATS[args.format](diffs, label))
    return EXIT_CHANGES if any(d.changed for d in diffs) else EXIT_NO_CHANGES
