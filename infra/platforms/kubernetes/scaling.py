"""How many pods a service keeps: a PodDisruptionBudget through voluntary disruptions, and a
HorizontalPodAutoscaler on CPU utilisation of the requests."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.autoscaling.v2 import MetricSpecArgsDict

from infra.platforms.kubernetes.target import Target
from spec.service import Autoscaling, ServiceSpec


def disruption_budget(
    target: Target, spec: ServiceSpec, min_available: int, opts: pulumi.ResourceOptions
) -> None:
    """Keeps `min_available` pods of the service through drains and rollouts."""
    k8s.policy.v1.PodDisruptionBudget(
        f"{spec.prefix}-pdb",
        metadata=target.metadata(spec.name, spec.name),
        spec={
            "min_available": min_available,
            "selector": {"match_labels": target.selector(spec.name)},
        },
        opts=opts,
    )


def autoscaler(
    target: Target, spec: ServiceSpec, scaling: Autoscaling, opts: pulumi.ResourceOptions
) -> None:
    """Scales the service's workload between `scaling`'s bounds on CPU utilisation."""
    k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{spec.prefix}-hpa",
        metadata=target.metadata(spec.name, spec.name),
        spec={
            "scale_target_ref": {
                "api_version": "apps/v1",
                "kind": "StatefulSet" if spec.stateful else "Deployment",
                "name": spec.name,
            },
            "min_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "metrics": [_cpu_utilisation(scaling.target_cpu_percent)],
        },
        opts=opts,
    )


def _cpu_utilisation(percent: int) -> MetricSpecArgsDict:
    utilisation = {"type": "Utilization", "average_utilization": percent}
    return {"type": "Resource", "resource": {"name": "cpu", "target": utilisation}}
