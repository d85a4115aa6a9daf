"""The one source of labels for every resource of the project."""

from __future__ import annotations

PART_OF = "safeguard"
EXEMPT_PREFIX = "policy.safeguard.dev/exempt-"
"""Annotation or Docker label key prefix exempting a resource from one named policy (the value
is the reason); see policies/README.md."""


def labels(service: str, instance: str, component: str | None = None) -> dict[str, str]:
    """Recommended Kubernetes labels; Docker containers carry the same ones.

    `service` is the workload's name (`app.kubernetes.io/name`), `instance` tells stacks apart and
    `component` is the role when one service runs several workloads (a backup job next to its
    database).
    """
    return {
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component or service,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(service: str, instance: str, component: str | None = None) -> dict[str, str]:
    """The subset of `labels` that identifies a workload's pods; stable for their whole life."""
    full = labels(service, instance, component)
    return {
        k: full[k]
        for k in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        )
    }


def exemption(policy: str, reason: str) -> dict[str, str]:
    """The annotation (or Docker label) exempting a resource from `policy`, with its reason."""
    return {EXEMPT_PREFIX + policy: reason}
