"""The stack's namespace: Pod Security "restricted" enforced, and ingress denied by default."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from spec.labels import labels


def prepare_namespace(name: str, instance: str) -> k8s.core.v1.Namespace:
    """The stack's namespace, with Pod Security "restricted" enforced and ingress denied by
    default, so a workload is reachable only through the NetworkPolicy of its own service."""
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": name,
            "labels": {
                **labels("namespace", instance),
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    )
    k8s.networking.v1.NetworkPolicy(
        "namespace-default-deny",
        metadata={
            "name": "default-deny-ingress",
            "namespace": namespace.metadata.name,
            "labels": labels("default-deny-ingress", instance),
        },
        spec={"pod_selector": {}, "policy_types": ["Ingress"]},
    )
    return namespace
