"""The offline tool's command line, `python -m infra COMMAND`.

Each command lives in its own module, which adds its arguments with `configure_parser(parser)`
and sets `handler`, a function from the parsed arguments to the exit code. Only the module of
the command being run is imported (`--help` names them all from `COMMANDS`), so no command pays
for another's imports.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from infra.offline.output import emit, silence

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
    "export": (
        "infra.offline.export",
        "write the stack as `pulumi stack export` does, for `pulumi policy analyze --file`",
    ),
}

DESCRIPTION = """\
Run safeguard's Pulumi program offline, under mocks: no Pulumi CLI, no cloud account, no
cluster. See the "Offline tool" section of README.md and policies/README.md."""

EPILOG = """\
examples:
  python -m infra render --stack production --out render
  python -m infra check --stack production
  python -m infra check --manifests rendered.yaml --policy-config policies/config/production.json
  python -m infra diff --stack staging --base origin/main --format markdown
  python -m infra export --stack production --out production.json

exit codes: 0 success (check: no mandatory violation; diff: no change), 1 mandatory violations
(check), 3 changes (diff), 2 the command could not run (unknown stack, invalid settings or
input). `python -m infra COMMAND --help` describes each command."""


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        if name == command:
            importlib.import_module(module).configure_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = _parser(command if command in COMMANDS else None).parse_args(argv)
    from infra.offline.stack_files import UnknownStackError

    try:
        return int(args.handler(args))
    except UnknownStackError as error:
        emit(str(error), sys.stderr)
        return 2
    except BrokenPipeError:
        # A reader that stopped reading (`| head`) is not an error of the command.
        silence(sys.stdout)
        silence(sys.stderr)
        return 1
