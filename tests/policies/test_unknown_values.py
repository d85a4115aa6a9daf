"""Values not known until the update runs never fail a check but leave a preview note, and
malformed input is reported, never raised."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess, Resource
from infra.offline.wire import UNKNOWN
from tests.support.diagnostics import of, only, violations
from tests.support.policies import (
    CONFIG_MAP,
    INGRESS,
    SERVICE,
    TYPES,
    container,
    deployment,
    docker,
    ingress,
    k8s,
    security_context,
)


def test_unknown_security_context_gives_a_preview_note(production: PolicyPackProcess) -> None:
    resource = deployment(
        container("api", securityContext=UNKNOWN),
        container("sidecar", securityContext=security_context(runAsUser=0)),
    )

    diagnostics = of(production.analyze(resource), "k8s-no-root")

    notes = [d for d in diagnostics if "during preview" in d.message]
    assert [d.enforcement_level for d in notes] == ["advisory"]
    assert ".spec.template.spec.containers[0].securityContext" in notes[0].message
    found = violations(diagnostics, "k8s-no-root")
    assert [("container 'sidecar'" in d.message, d.enforcement_level) for d in found] == [
        (True, "mandatory")
    ]


@pytest.mark.parametrize(
    "resource",
    [
        Resource(type=TYPES["Deployment"], name="api", properties={"spec": UNKNOWN}),
        deployment(container(env=UNKNOWN, image=UNKNOWN)),
        docker(user=UNKNOWN, healthcheck={"tests": UNKNOWN}, envs=UNKNOWN),
        ingress({"nginx.ingress.kubernetes.io/enable-cors": UNKNOWN}),
        k8s(CONFIG_MAP, "nginx", data={"nginx.conf": UNKNOWN}),
    ],
    ids=["spec", "env-and-image", "docker", "ingress", "configmap"],
)
def test_unknown_values_never_fail_a_check(pack: PolicyPackProcess, resource: Resource) -> None:
    diagnostics = pack.analyze(resource)

    assert diagnostics, "an unknown field must leave a note"
    assert {d.enforcement_level for d in diagnostics if "during preview" in d.message} == {
        "advisory"
    }
    assert all(
        "during preview" in d.message or d.enforcement_level == "advisory" for d in diagnostics
    ), [d.message for d in diagnostics]


MALFORMED: list[Resource] = [
    Resource(type=TYPES["Deployment"], name="a", properties={"spec": "replicas: 3"}),
    Resource(type=TYPES["CronJob"], name="b", properties={"spec": {"jobTemplate": []}}),
    deployment(container(securityContext=["runAsNonRoot"])),
    deployment(container(securityContext=security_context(runAsUser="0", runAsNonRoot="yes"))),
    deployment(container(env={"CORS_ORIGINS": "*"}, resources="big", image=7)),
    deployment(container(name=None, env=[None, 3, {"name": 5}, {"name": "X", "value": 1}])),
    deployment(containers="api", volumes={"a": 1}, hostNetwork="yes"),
    deployment(container(securityContext=security_context(capabilities={"drop": "ALL"}))),
    docker(
        user=0, envs="A=B", labels={"x": 1}, healthcheck=["CMD"], uploads=[None, {"content": 4}]
    ),
    docker(capabilities={"drops": [None, 1]}, mounts=[{"type": 3}], memory="lots", cpus=2),
    ingress({"nginx.ingress.kubernetes.io/enable-cors": True}),  # type: ignore[dict-item]
    Resource(type=INGRESS, name="i", properties={"metadata": {"annotations": ["x"]}}),
    Resource(type=CONFIG_MAP, name="c", properties={"data": ["x"], "binaryData": {"k": "%%"}}),
    Resource(type=SERVICE, name="s", properties={"spec": {"type": "LoadBalancer", "selector": 1}}),
    Resource(type=TYPES["Pod"], name="p", properties={"metadata": "x", "spec": None}),
]


@pytest.mark.parametrize("resource", MALFORMED, ids=lambda r: f"{r.type.rsplit(':')[-1]}-{r.name}")
def test_malformed_input_is_reported_not_raised(
    pack: PolicyPackProcess, resource: Resource
) -> None:
    diagnostics = pack.analyze(resource) + pack.analyze_stack([resource])

    assert not [d.message for d in diagnostics if "bug in the safeguard policy pack" in d.message]


def test_wrong_type_names_the_field_and_what_it_must_be(pack: PolicyPackProcess) -> None:
    resource = deployment(container(securityContext=security_context(runAsUser="0")))

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "spec.template.spec.containers[0].securityContext.runAsUser is '0' (str)" in message
    assert "must be an integer" in message
