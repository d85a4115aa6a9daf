"""policies/namespaces.py: nothing in the default namespace."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.diagnostics import fired, only
from tests.support.policies import SERVICE, deployment, k8s


@pytest.mark.parametrize(
    ("namespace", "state"), [(None, "is not set"), ("default", 'is "default"')]
)
def test_no_default_namespace(pack: PolicyPackProcess, namespace: str | None, state: str) -> None:
    message = only(
        pack.analyze(deployment(namespace=namespace)), "k8s-no-default-namespace", "advisory"
    )
    service_in_default = k8s(SERVICE, "api", namespace="default", spec={"type": "ClusterIP"})

    assert f"metadata.namespace {state}" in message
    assert "k8s-no-default-namespace" in fired(pack.analyze(service_in_default))
