"""Per-resource exemptions from a named policy, declared where reviewers see them.

Kubernetes: an annotation `policy.safeguard.dev/exempt-<policy>: "<reason>"` on the resource's
metadata (or, for workloads, on the pod template's metadata). Docker: a container label with the
same key. The reason is mandatory; an exemption without one exempts nothing and is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from _values import is_unknown
from _workloads import DOCKER_CONTAINER, pod_template_metadata_path

PREFIX = "policy.safeguard.dev/exempt-"


@dataclass(frozen=True)
class Exemption:
    """An exemption found on a resource: where it was declared and the reason given."""

    key: str
    where: str
    reason: str | None
    """The trimmed reason; None when the value is not known yet (preview)."""

    @property
    def valid(self) -> bool:
        return bool(self.reason)


def _annotation_sources(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    sources: list[tuple[str, Any]] = [("metadata.annotations", _dig(props, ("metadata",)))]
    template_path = pod_template_metadata_path(resource_type)
    if template_path:
        sources.append((".".join(template_path) + ".annotations", _dig(props, template_path)))
    return [
        (where, metadata.get("annotations"))
        for where, metadata in sources
        if isinstance(metadata, Mapping)
    ]


def _dig(props: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _as_reason(value: Any) -> str | None:
    if is_unknown(value):
        return None
    return value.strip() if isinstance(value, str) else ""


def find_exemption(
    resource_type: str, props: Mapping[str, Any], policy_name: str
) -> Exemption | None:
    """The exemption from `policy_name` declared on the resource, if any."""
    key = PREFIX + policy_name
    if resource_type == DOCKER_CONTAINER:
        labels = props.get("labels")
        if not isinstance(labels, list):
            return None
        for index, label in enumerate(labels):
            if isinstance(label, Mapping) and label.get("label") == key:
                return Exemption(key, f"labels[{index}]", _as_reason(label.get("value")))
        return None
    for where, found in _annotation_sources(resource_type, props):
        if isinstance(found, Mapping) and key in found:
            return Exemption(key, where, _as_reason(found[key]))
    return None


def exempted_message(exemption: Exemption) -> str:
    return (
        f"exempted: {exemption.reason} ({exemption.key} at {exemption.where}; "
        "the check was skipped, review that the reason still holds)"
    )


def missing_reason_message(exemption: Exemption) -> str:
    return (
        f"{exemption.key} at {exemption.where} gives no reason, so it exempts nothing; "
        f'write why the exemption is needed, e.g. {exemption.key}: "ticket SEC-123: <reason>"'
    )
