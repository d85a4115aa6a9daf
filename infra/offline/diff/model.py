"""What the offline diff finds: per stack, the resources that change and how, per resource the
property changes, as `pulumi preview --diff` would list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["create", "update", "replace", "delete"]
Op = Literal["add", "remove", "update"]
Path_ = tuple[str | int, ...]


class DiffError(Exception):
    """The diff cannot be computed; the message says why and what to do."""


@dataclass(frozen=True)
class Change:
    """One property that differs between the base and the working tree."""

    path: str
    """Property path as `pulumi preview --diff` prints it: `spec.template.spec.containers[0]`."""
    op: Op
    """add (only in the working tree), remove (only in the base) or update."""
    old: Any
    """Value at the base (None when added); masked when secret."""
    new: Any
    """Value in the working tree (None when removed); masked when secret."""
    replaces: str | None = None
    """Why this change cannot be applied in place, when it forces a replacement."""
    masked: bool = False
    """True when the values are hidden because they are, or touch, a secret."""


@dataclass(frozen=True)
class ResourceDiff:
    """One resource whose desired state changes."""

    file: str
    """Rendered file, relative to the stack's render directory: its identity."""
    type: str
    """Pulumi type token: `kubernetes:apps/v1:Deployment`, `docker:index/container:Container`."""
    name: str
    """Kubernetes object name, or the logical name for other resources."""
    action: Action
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class StackDiff:
    """Everything that changes in one stack."""

    stack: str
    resources: tuple[ResourceDiff, ...]
    unchanged: int
    base_missing: bool = False
    """The stack file does not exist at the base: every resource is a create."""

    def counts(self) -> dict[str, int]:
        """Resources per action, plus `unchanged`."""
        counts = {action: 0 for action in ("create", "update", "replace", "delete")}
        for resource in self.resources:
            counts[resource.action] += 1
        return {**counts, "unchanged": self.unchanged}

    @property
    def changed(self) -> bool:
        return bool(self.resources)
