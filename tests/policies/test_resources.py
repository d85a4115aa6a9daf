"""policies/resources.py: requests and limits on every container (advisory by default)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.diagnostics import only
from tests.support.policies import container, deployment, docker, init_container


def test_missing_requests_and_limits(pack: PolicyPackProcess) -> None:
    resources = {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}
    resource = deployment(container(), initContainers=[init_container(resources=resources)])

    message = only(pack.analyze(resource), "k8s-resource-limits", "advisory")

    assert "init container 'migrate' has no requests.memory, limits.cpu" in message
    assert "spec.template.spec.initContainers[0].resources" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({"memory": None}, "memory is not set"), ({"cpus": None}, "neither cpus nor cpuQuota")],
)
def test_docker_limits(pack: PolicyPackProcess, changes: dict[str, Any], expected: str) -> None:
    message = only(pack.analyze(docker(**changes)), "docker-resource-limits", "advisory")

    assert expected in message
