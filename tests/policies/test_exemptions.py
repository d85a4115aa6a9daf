"""Exemptions: an annotation (or Docker label) naming one policy and giving a reason skips that
check and is listed for review; without a reason it is a violation itself."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess
from infra.offline.wire import UNKNOWN
from tests.support.diagnostics import of, violations
from tests.support.policies import EXEMPT, container, deployment, docker, security_context

ROOT = container(securityContext=security_context(runAsUser=0))


def test_exemption_with_reason_skips_the_check_and_is_listed(
    production: PolicyPackProcess,
) -> None:
    reason = "SEC-42: vendor image needs uid 0 until 2.0"
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": reason})

    diagnostics = production.analyze(resource)

    assert [(d.policy_name, d.enforcement_level) for d in diagnostics] == [
        ("k8s-no-root", "advisory")
    ]
    assert diagnostics[0].message.startswith(f"exempted: {reason}")


def test_exemption_on_the_pod_template_counts(pack: PolicyPackProcess) -> None:
    resource = deployment(ROOT, template_annotations={f"{EXEMPT}k8s-no-root": "SEC-42"})

    diagnostics = pack.analyze(resource)

    assert violations(diagnostics, "k8s-no-root") == []
    assert "spec.template.metadata.annotations" in of(diagnostics, "k8s-no-root")[0].message


@pytest.mark.parametrize("reason", ["", "   "])
def test_exemption_without_reason_is_a_violation(pack: PolicyPackProcess, reason: str) -> None:
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": reason})

    found = violations(pack.analyze(resource), "k8s-no-root")

    assert sorted("gives no reason" in d.message for d in found) == [False, True]
    assert all(d.enforcement_level == "mandatory" for d in found)


def test_exemption_whose_reason_is_unknown_does_not_exempt(pack: PolicyPackProcess) -> None:
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": UNKNOWN})

    diagnostics = of(pack.analyze(resource), "k8s-no-root")

    assert [d.enforcement_level for d in violations(diagnostics, "k8s-no-root")] == ["mandatory"]
    assert [d.enforcement_level for d in diagnostics if "during preview" in d.message] == [
        "advisory"
    ]


def test_exemption_covers_only_the_named_policy(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(image="nginx", securityContext=security_context(runAsUser=0)),
        annotations={f"{EXEMPT}image-tag-pinned": "upstream only publishes latest"},
    )

    diagnostics = pack.analyze(resource)

    assert violations(diagnostics, "k8s-no-root")
    assert violations(diagnostics, "image-tag-pinned") == []
    assert of(diagnostics, "image-tag-pinned")[0].message.startswith("exempted: upstream")


def test_docker_label_exemption(pack: PolicyPackProcess) -> None:
    labels = [{"label": f"{EXEMPT}docker-healthcheck", "value": "one-shot migration container"}]

    diagnostics = pack.analyze(docker(healthcheck=None, labels=labels))

    assert [(d.policy_name, d.enforcement_level) for d in diagnostics] == [
        ("docker-healthcheck", "advisory")
    ]
    assert "labels[0]" in diagnostics[0].message
