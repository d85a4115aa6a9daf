"""What the offline diff finds: per stack, the resources that change and how, per resource the
property changes, as `pulumi preview --diff` would list them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["create", "update", "replace", "delete"]
Op = Literal["add", "remove", "update"]
Path_ = tuple[str | int, ...]


# Resources whose replacement or deletion can take data with it: a StatefulSet's pods and the
# claims of its volumeClaimTemplates, claims and volumes themselves, Docker volumes.
STATEFUL_TYPES: frozenset[str] = frozenset(
    {
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1beta1:StatefulSet",
        "kubernetes:apps/v1beta2:StatefulSet",
        "kubernetes:core/v1:PersistentVolumeClaim",
        "kubernetes:core/v1:PersistentVolume",
        "docker:index/volume:Volume",
    }
)

BACKUP_STEPS = 'RELEASING.md, "A database backup before a risky release"'
"""Where the steps to take before losing data are."""


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
    warnings: tuple[str, ...] = ()
    """What the preview would not show but `pulumi up` would run into."""

    @property
    def risks_data(self) -> bool:
        """A stateful resource replaced or deleted: its data may go with it."""
        return self.action in ("replace", "delete") and self.type in STATEFUL_TYPES


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

    def data_at_risk(self) -> tuple[ResourceDiff, ...]:
        """The stateful resources this diff replaces or deletes."""
        return tuple(r for r in self.resources if r.risks_data)

    @property
    def changed(self) -> bool:
        return bool(self.resources)
