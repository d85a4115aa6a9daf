"""Exposure policy: only the edge workload gets a Service of type LoadBalancer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from _framework import Resource, resource_policy
from _values import UNKNOWN, Findings
from _workloads import COMPONENT_LABEL, SERVICE, label, labels_component
from pulumi_policy import EnforcementLevel, PolicyConfigSchema

DEFAULT_EDGE_COMPONENTS: Final = ("edge",)


def _edge_components(config: Mapping[str, Any]) -> frozenset[str]:
    configured = config.get("edgeComponents")
    if isinstance(configured, list) and all(isinstance(c, str) for c in configured):
        return frozenset(configured)
    return frozenset(DEFAULT_EDGE_COMPONENTS)


def check_loadbalancer_edge_only(resource: Resource, findings: Findings) -> None:
    spec = findings.field(resource.props, "spec", "", dict)
    service_type = findings.field(spec, "type", "spec", str)
    if service_type != "LoadBalancer":
        return
    metadata = findings.field(resource.props, "metadata", "", dict)
    components = [
        labels_component(findings.field(metadata, "labels", "metadata", dict)),
        labels_component(findings.field(spec, "selector", "spec", dict)),
    ]
    edge = _edge_components(resource.config)
    if any(isinstance(c, str) and c in edge for c in components):
        return
    if UNKNOWN in components:
        findings.unknown("metadata.labels / spec.selector")
        return
    found = ", ".join(sorted({c for c in components if isinstance(c, str)})) or "none"
    findings.fail(
        f"{label(resource.type, resource.name)}: spec.type is LoadBalancer but the Service is "
        f"not the edge ({COMPONENT_LABEL}: {found}; edge components: "
        f"{', '.join(sorted(edge))}). Use ClusterIP and route through the edge, or label the "
        f"edge workload's Service {COMPONENT_LABEL}: edge."
    )


POLICIES: Final = [
    resource_policy(
        name="k8s-loadbalancer-edge-only",
        description="Only the edge workload may have a Service of type LoadBalancer.",
        resource_types={SERVICE},
        check=check_loadbalancer_edge_only,
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=PolicyConfigSchema(
            properties={
                "edgeComponents": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": list(DEFAULT_EDGE_COMPONENTS),
                    "description": "app.kubernetes.io/component values that mark the edge.",
                }
            }
        ),
    ),
]
