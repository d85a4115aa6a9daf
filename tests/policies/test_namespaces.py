"""policies/namespaces.py: nothing in the default namespace."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess, Resource
from tests.support.diagnostics import fired, only
from tests.support.policies import SERVICE, deployment, k8s

SECRET = "kubernetes:core/v1:Secret"


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


def test_a_read_object_is_not_judged_by_the_properties_its_get_sent(
    pack: PolicyPackProcess,
) -> None:
    """A `get` sends no properties, and an export keeps them as the object's inputs: nothing
    of the object is known there, so no verdict (its outputs, the live object, go to
    AnalyzeStack). A Secret the program registers without a namespace is still reported."""
    read = Resource(type=SECRET, name="edge-tls", properties={})
    registered = Resource(
        type=SECRET, name="edge-tls", properties={"apiVersion": "v1", "kind": "Secret"}
    )

    assert fired(pack.analyze(read)) == set()
    assert "metadata.namespace is not set" in only(
        pack.analyze(registered), "k8s-no-default-namespace", "advisory"
    )
