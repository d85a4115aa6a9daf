"""Who a service's pods are to the API server: a ServiceAccount each, whose token is never
automounted (a container that talks to the API server mounts an ApiTokenVolume), and for
Prometheus a read-only ClusterRole on the nodes' metrics."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.rbac.v1 import PolicyRuleArgsDict

from infra.platforms.kubernetes.target import Target
from spec.service import ServiceSpec

_NODE_METRICS: PolicyRuleArgsDict = {
    "api_groups": [""],
    "resources": ["nodes", "nodes/metrics", "nodes/proxy"],
    "verbs": ["get", "list", "watch"],
}


def service_account(
    target: Target, spec: ServiceSpec, opts: pulumi.ResourceOptions
) -> k8s.core.v1.ServiceAccount:
    """The pods' ServiceAccount, named after the service."""
    return k8s.core.v1.ServiceAccount(
        f"{spec.prefix}-serviceaccount",
        metadata=target.metadata(spec.name, spec.name),
        automount_service_account_token=False,
        opts=opts,
    )


def node_metrics_reader(
    target: Target, spec: ServiceSpec, account: k8s.core.v1.ServiceAccount
) -> None:
    """A ClusterRole reading kubelet and cAdvisor metrics, bound to the service's account."""
    opts = pulumi.ResourceOptions(parent=account)
    name = f"{target.instance}-{spec.name}-node-metrics"
    role = k8s.rbac.v1.ClusterRole(
        f"{spec.prefix}-clusterrole",
        metadata={"name": name, "labels": target.labels(spec.name)},
        rules=[_NODE_METRICS],
        opts=opts,
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{spec.prefix}-clusterrolebinding",
        metadata={"name": name, "labels": target.labels(spec.name)},
        role_ref={
            "api_group": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role.metadata.name,
        },
        subjects=[{"kind": "ServiceAccount", "name": spec.name, "namespace": target.namespace}],
        opts=opts,
    )
