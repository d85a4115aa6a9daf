"""The project's stacks are its `Pulumi.<stack>.yaml` files: one check of a stack name, with one
message and one exit code (2) for an unknown stack across render, check and diff."""

from __future__ import annotations

import re
from pathlib import Path

from infra.offline.project import PROJECT_ROOT

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class UnknownStackError(ValueError):
    """No `Pulumi.<stack>.yaml` for the stack asked for: a usage error (exit code 2)."""

    def __init__(self, stack: str, root: Path = PROJECT_ROOT) -> None:
        super().__init__(
            f"no stack {stack!r}: there is no Pulumi.{stack}.yaml "
            f"(stacks: {', '.join(known_stacks(root)) or 'none'})"
        )
        self.stack = stack


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    """The stack names with a stack file in `root`, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def has_stack(stack: str, root: Path = PROJECT_ROOT) -> bool:
    """True when `root` holds `Pulumi.<stack>.yaml` (a name, never a path)."""
    return bool(_STACK_NAME.match(stack)) and (root / f"Pulumi.{stack}.yaml").is_file()


def require_stack(stack: str, root: Path = PROJECT_ROOT) -> None:
    """UnknownStackError naming the known stacks, unless `root` has `Pulumi.<stack>.yaml`."""
    if not has_stack(stack, root):
        raise UnknownStackError(stack, root)
