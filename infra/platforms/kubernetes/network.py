"""How a service is reached: its Service (the edge's of the stack's public type), the
NetworkPolicy that lets in only the services its spec names, and the Ingress of the edge."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import ServicePortArgsDict, ServiceSpecArgsDict
from pulumi_kubernetes.networking.v1 import (
    IngressRuleArgsDict,
    IngressSpecArgsDict,
    NetworkPolicyIngressRuleArgsDict,
    NetworkPolicyPeerArgsDict,
)

from infra.platforms.kubernetes.target import Target
from spec.service import Ingress, Port, ServiceSpec


def service(
    target: Target, spec: ServiceSpec, public_type: str, opts: pulumi.ResourceOptions
) -> None:
    """The Service in front of the pods: ClusterIP, or `public_type` for the edge."""
    service_type = public_type if spec.public else "ClusterIP"
    service_spec: ServiceSpecArgsDict = {
        "type": service_type,
        "selector": target.selector(spec.name),
        "ports": [_service_port(p) for p in spec.service_ports],
    }
    if service_type in ("LoadBalancer", "NodePort"):
        # Nodes hand traffic only to pods of their own, without SNAT, so the pod sees the
        # address the connection came from rather than another node's.
        service_spec["external_traffic_policy"] = "Local"
    k8s.core.v1.Service(
        f"{spec.prefix}-service",
        metadata=target.metadata(spec.name, spec.name),
        spec=service_spec,
        opts=opts,
    )


def network_policy(target: Target, spec: ServiceSpec, opts: pulumi.ResourceOptions) -> None:
    """Ingress to the pods only from the services (and on the ports) the spec names."""
    k8s.networking.v1.NetworkPolicy(
        f"{spec.prefix}-networkpolicy",
        metadata=target.metadata(spec.name, spec.name),
        spec={
            "pod_selector": {"match_labels": target.selector(spec.name)},
            "policy_types": ["Ingress"],
            "ingress": [_allowed(target, rule) for rule in spec.ingress],
        },
        opts=opts,
    )


def ingress(
    target: Target,
    spec: ServiceSpec,
    ingress_class: str,
    host: str | None,
    tls_secret: str | None,
    opts: pulumi.ResourceOptions,
) -> None:
    """An Ingress of `ingress_class` to the edge's first port, for `host` (None: any host), with
    TLS from `tls_secret` when there is one."""
    ingress_spec: IngressSpecArgsDict = {
        "ingress_class_name": ingress_class,
        "rules": [_rule(spec.name, spec.service_ports[0], host)],
    }
    if tls_secret:
        ingress_spec["tls"] = [{"hosts": [host] if host else [], "secret_name": tls_secret}]
    k8s.networking.v1.Ingress(
        f"{spec.prefix}-ingress",
        metadata=target.metadata(spec.name, spec.name),
        spec=ingress_spec,
        opts=opts,
    )


def _service_port(port: Port) -> ServicePortArgsDict:
    return {
        "name": port.name,
        "port": port.port,
        "target_port": port.target or port.port,
        "protocol": "TCP",
    }


def _allowed(target: Target, rule: Ingress) -> NetworkPolicyIngressRuleArgsDict:
    allowed: NetworkPolicyIngressRuleArgsDict = {
        "ports": [{"port": p, "protocol": "TCP"} for p in rule.ports]
    }
    if not rule.from_anywhere:
        allowed["from_"] = [_peer(target, source) for source in rule.from_services]
    return allowed


def _peer(target: Target, service_name: str) -> NetworkPolicyPeerArgsDict:
    match_labels = {
        "app.kubernetes.io/name": service_name,
        "app.kubernetes.io/instance": target.instance,
    }
    return {"pod_selector": {"match_labels": match_labels}}


def _rule(service_name: str, port: Port, host: str | None) -> IngressRuleArgsDict:
    backend = {"service": {"name": service_name, "port": {"number": port.port}}}
    rule: IngressRuleArgsDict = {
        "http": {"paths": [{"path": "/", "path_type": "Prefix", "backend": backend}]}
    }
    if host:
        rule["host"] = host
    return rule
