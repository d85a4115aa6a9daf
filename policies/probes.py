"""Health-check policies: Kubernetes liveness/readiness probes and Docker healthchecks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from _framework import Resource, resource_policy
from _values import Findings, join
from _workloads import DOCKER_CONTAINER, K8S_WORKLOADS, containers, label, pod_spec
from pulumi_policy import EnforcementLevel

_HANDLERS: Final = ("httpGet", "tcpSocket", "exec", "grpc")


def check_k8s_probes(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    # Job and CronJob pods (and bare pods that never restart) run to completion: no probes.
    if pod is None or pod.batch:
        return
    for container in containers(pod, findings, kinds=("containers",)):
        for probe, role in (
            ("livenessProbe", "restart it when it hangs"),
            ("readinessProbe", "keep traffic away until it is ready"),
        ):
            value = findings.field(container.spec, probe, container.path, dict)
            path = join(container.path, probe)
            if value is None:
                findings.fail(
                    f"{label(resource.type, resource.name)}: {container.title} has no "
                    f"{probe} ({path}); add one (httpGet on the health route) to {role}."
                )
            elif isinstance(value, Mapping) and not any(value.get(h) for h in _HANDLERS):
                findings.fail(
                    f"{label(resource.type, resource.name)}: {container.title}: {path} has no "
                    f"handler; set one of {', '.join(_HANDLERS)}."
                )


def check_docker_healthcheck(resource: Resource, findings: Findings) -> None:
    where = label(resource.type, resource.name)
    must_run = findings.field(resource.props, "mustRun", "", bool)
    restart = findings.field(resource.props, "restart", "", str)
    if must_run is False and restart in (None, "no"):
        # Never restarted and allowed to exit: a one-shot task, like a Kubernetes Job.
        return
    healthcheck = findings.field(resource.props, "healthcheck", "", dict)
    if healthcheck is None:
        findings.fail(
            f"{where}: healthcheck is not set, so Docker never learns the service is unhealthy. "
            'Add healthcheck.tests, e.g. ["CMD", "/app/healthcheck"].'
        )
        return
    tests = findings.field(healthcheck, "tests", "healthcheck", list)
    if tests is None or (isinstance(tests, list) and not tests):
        findings.fail(
            f"{where}: healthcheck.tests is empty; give the command Docker runs, "
            'e.g. ["CMD", "/app/healthcheck"].'
        )
        return
    if not isinstance(tests, list):
        return
    first = findings.check_value(tests[0], "healthcheck.tests[0]", str)
    if isinstance(first, str) and first.strip().upper() == "NONE":
        findings.fail(
            f'{where}: healthcheck.tests is ["NONE"], which disables the image\'s healthcheck. '
            'Give a real test, e.g. ["CMD", "/app/healthcheck"].'
        )


POLICIES: Final = [
    resource_policy(
        name="k8s-probes",
        description="Long-running Kubernetes containers must have liveness and readiness probes.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_probes,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    resource_policy(
        name="docker-healthcheck",
        description="Docker containers must have an enabled healthcheck.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_healthcheck,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
