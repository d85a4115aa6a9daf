"""Compute resource policies: CPU and memory requests and limits on every container."""

from __future__ import annotations

from typing import Final

from _framework import Resource, resource_policy
from _values import INT, Findings, join
from _workloads import (
    DOCKER_CONTAINER,
    K8S_WORKLOADS,
    containers,
    docker_file_carrier,
    label,
    pod_spec,
)
from pulumi_policy import EnforcementLevel

_QUANTITY: Final = (str, int, float)


def check_k8s_resources(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    # Ephemeral containers cannot declare resources, so only regular and init containers.
    for container in containers(pod, findings, kinds=("containers", "initContainers")):
        resources_path = join(container.path, "resources")
        resources = findings.field(container.spec, "resources", container.path, dict)
        missing = []
        for section in ("requests", "limits"):
            values = findings.field(resources, section, resources_path, dict)
            for name in ("cpu", "memory"):
                value = findings.field(values, name, join(resources_path, section), _QUANTITY)
                if value is None or value == "":
                    missing.append(f"{section}.{name}")
        if missing:
            findings.fail(
                f"{label(resource.type, resource.name)}: {container.title} has no "
                f"{', '.join(missing)} under {resources_path}; set requests and limits for "
                "both cpu and memory (e.g. cpu 250m/500m, memory 256Mi/256Mi)."
            )


def check_docker_resources(resource: Resource, findings: Findings) -> None:
    if docker_file_carrier(resource.props, findings):
        return  # no process to limit
    where = label(resource.type, resource.name)
    memory = findings.field(resource.props, "memory", "", INT)
    if memory is None or (isinstance(memory, int) and memory <= 0):
        findings.fail(
            f"{where}: memory is not set, so the container may use all of the host's memory. "
            "Set memory (MB), e.g. memory: 256."
        )
    cpu_limits = [
        findings.field(resource.props, key, "", kind)
        for key, kind in (("cpus", str), ("cpuQuota", INT))
    ]
    if all(value is None or value in ("", 0) for value in cpu_limits):
        findings.fail(
            f"{where}: neither cpus nor cpuQuota is set, so the container may use every CPU "
            'of the host. Set cpus, e.g. cpus: "0.5".'
        )


POLICIES: Final = [
    resource_policy(
        name="k8s-resource-limits",
        description="Kubernetes containers must set CPU and memory requests and limits.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_resources,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    resource_policy(
        name="docker-resource-limits",
        description="Docker containers must set memory and CPU limits.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_resources,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
