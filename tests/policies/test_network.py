"""policies/network.py: only the edge gets a LoadBalancer Service."""

from __future__ import annotations

from infra.offline.analyzer import PolicyPackProcess, Resource
from tests.support.diagnostics import fired, only
from tests.support.policies import SERVICE, k8s


def service(service_type: str, component: str) -> Resource:
    labels = {"app.kubernetes.io/component": component}
    return k8s(
        SERVICE,
        component,
        metadata={"labels": labels},
        spec={"type": service_type, "selector": labels, "ports": [{"port": 443}]},
    )


def test_load_balancer_only_for_the_edge(pack: PolicyPackProcess) -> None:
    message = only(
        pack.analyze(service("LoadBalancer", "api")), "k8s-loadbalancer-edge-only", "advisory"
    )

    assert "app.kubernetes.io/component: api" in message
    assert pack.analyze(service("LoadBalancer", "edge")) == []
    assert pack.analyze(service("ClusterIP", "api")) == []


def test_edge_components_are_configurable(pack: PolicyPackProcess) -> None:
    pack.configure({"k8s-loadbalancer-edge-only": {"edgeComponents": ["nginx"]}})

    assert pack.analyze(service("LoadBalancer", "nginx")) == []
    assert "k8s-loadbalancer-edge-only" in fired(pack.analyze(service("LoadBalancer", "edge")))
