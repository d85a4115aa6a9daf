"""Placement policy: nothing of the application lives in the `default` namespace."""

from __future__ import annotations

from typing import Final

from _framework import Resource, resource_policy
from _values import Findings
from _workloads import (
    CONFIG_MAP,
    HPAS,
    INGRESSES,
    K8S_WORKLOADS,
    NETWORK_POLICIES,
    PDBS,
    SERVICE,
    label,
)
from pulumi_policy import EnforcementLevel

NAMESPACED: Final = (
    K8S_WORKLOADS
    | INGRESSES
    | NETWORK_POLICIES
    | PDBS
    | HPAS
    | {SERVICE, CONFIG_MAP, "kubernetes:core/v1:Secret", "kubernetes:core/v1:ServiceAccount"}
)


def check_no_default_namespace(resource: Resource, findings: Findings) -> None:
    metadata = findings.field(resource.props, "metadata", "", dict)
    namespace = findings.field(metadata, "namespace", "metadata", str)
    if namespace is None or (isinstance(namespace, str) and namespace.strip() in ("", "default")):
        state = "is not set" if namespace is None else f'is "{namespace}"'
        findings.fail(
            f"{label(resource.type, resource.name)}: metadata.namespace {state}, so it lands "
            "in the default namespace, shared by everything and covered by no policy. Set "
            "metadata.namespace to the application's namespace."
        )


POLICIES: Final = [
    resource_policy(
        name="k8s-no-default-namespace",
        description="Kubernetes workloads and their objects must not live in the default "
        "namespace.",
        resource_types=NAMESPACED,
        check=check_no_default_namespace,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
