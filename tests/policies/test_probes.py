"""policies/probes.py: long-running containers need liveness and readiness probes (Kubernetes)
or a health check (Docker); one-shot containers do not."""

from __future__ import annotations

from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.diagnostics import fired, only
from tests.support.policies import container, deployment, docker, init_container, workload


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_long_running_container_needs_both_probes(pack: PolicyPackProcess, probe: str) -> None:
    resource = workload("StatefulSet", container("db", **{probe: None}))

    message = only(pack.analyze(resource), "k8s-probes")

    assert f"container 'db' has no {probe} (spec.template.spec.containers[0].{probe})" in message


def test_probe_without_handler_is_refused(pack: PolicyPackProcess) -> None:
    resource = deployment(container(readinessProbe={"periodSeconds": 5}))

    message = only(pack.analyze(resource), "k8s-probes")

    assert "containers[0].readinessProbe has no handler" in message


@pytest.mark.parametrize(
    ("kind", "needs_probes"),
    [("Job", False), ("CronJob", False), ("DaemonSet", True), ("Pod", True)],
)
def test_only_long_running_pods_need_probes(
    pack: PolicyPackProcess, kind: str, needs_probes: bool
) -> None:
    resource = workload(kind, container(livenessProbe=None, readinessProbe=None))

    assert ("k8s-probes" in fired(pack.analyze(resource))) is needs_probes


def test_pod_that_never_restarts_needs_no_probes(pack: PolicyPackProcess) -> None:
    resource = workload(
        "Pod", container(livenessProbe=None, readinessProbe=None), restartPolicy="Never"
    )

    assert pack.analyze(resource) == []


def test_init_containers_need_no_probes(pack: PolicyPackProcess) -> None:
    resource = deployment(container(), initContainers=[init_container()])

    assert pack.analyze(resource) == []


def test_one_shot_docker_container_needs_no_healthcheck(pack: PolicyPackProcess) -> None:
    one_shot = docker("migrate", healthcheck=None, mustRun=False, restart="no")
    restarted = docker("worker", healthcheck=None, mustRun=False, restart="unless-stopped")

    assert pack.analyze(one_shot) == []
    assert "healthcheck is not set" in only(pack.analyze(restarted), "docker-healthcheck")


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [
        (None, "healthcheck is not set"),
        ({"tests": ["NONE"]}, 'healthcheck.tests is ["NONE"]'),
        ({"tests": [], "interval": "5s"}, "healthcheck.tests is empty"),
    ],
)
def test_docker_healthcheck_must_be_enabled(
    pack: PolicyPackProcess, healthcheck: dict[str, Any] | None, expected: str
) -> None:
    message = only(pack.analyze(docker(healthcheck=healthcheck)), "docker-healthcheck")

    assert expected in message
