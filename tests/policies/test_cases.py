"""Four cases for every policy the pack reports, over the Analyzer protocol against the real pack
process: a compliant resource passes, a broken one fails, a missing field has its documented
outcome, and an unknown value never fails but leaves the preview note.

The table is keyed by policy name and checked against GetAnalyzerInfo, so a policy added to the
pack without its four cases fails this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from infra.offline.analyzer import Diagnostic, PolicyPackProcess, Resource
from infra.offline.wire import UNKNOWN
from tests.support.policies import (
    CONFIG_MAP,
    LABELS,
    PACK_DIR,
    SERVICE,
    container,
    deployment,
    docker,
    ingress,
    k8s,
    network_policy,
    pdb,
    security_context,
)

Case = Literal["pass", "fail", "missing", "unknown"]
CASES: tuple[Case, ...] = ("pass", "fail", "missing", "unknown")
NP_FOR_API = network_policy({"app.kubernetes.io/name": "api"})
CORS_FROM_SETTINGS = {
    "name": "CORS_ALLOW_ALL_ORIGINS",
    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "cors-all"}},
}
PDB_FOR_API = pdb({"app.kubernetes.io/name": "api"})


@dataclass(frozen=True)
class Cases:
    """Resources (a list: stack policies get the whole list) for each case of one policy."""

    passing: Callable[[], list[Resource]]
    failing: Callable[[], list[Resource]]
    missing: Callable[[], list[Resource]]
    """A field the policy reads is absent."""
    missing_fails: bool
    """Whether the absent field is a violation (user not set) or fine (hostNetwork not set)."""
    unknown: Callable[[], list[Resource]]
    """A field the policy reads is not known yet (preview)."""


def _sc(**changes: Any) -> dict[str, Any]:
    return {"securityContext": security_context(**changes)}


def one(factory: Callable[[], Resource]) -> Callable[[], list[Resource]]:
    return lambda: [factory()]


def _service(service_type: Any, component: Any = "api") -> Resource:
    labels = {"app.kubernetes.io/component": component}
    return k8s(SERVICE, "api", metadata={"labels": labels}, spec={"type": service_type})


TABLE: dict[str, Cases] = {
    "k8s-no-root": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(**_sc(runAsUser=0)))),
        missing=one(lambda: deployment(container(**_sc(runAsUser=None, runAsNonRoot=None)))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(**_sc(runAsUser=UNKNOWN, runAsNonRoot=None)))),
    ),
    "docker-no-root": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(user="root")),
        missing=one(lambda: docker(user=None)),
        missing_fails=True,
        unknown=one(lambda: docker(user=UNKNOWN)),
    ),
    "k8s-probes": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(readinessProbe={"periodSeconds": 5}))),
        missing=one(lambda: deployment(container(livenessProbe=None))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(livenessProbe=UNKNOWN))),
    ),
    "docker-healthcheck": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(healthcheck={"tests": ["NONE"]})),
        missing=one(lambda: docker(healthcheck=None)),
        missing_fails=True,
        unknown=one(lambda: docker(healthcheck={"tests": UNKNOWN})),
    ),
    "no-wildcard-cors": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(env=[{"name": "CORS_ORIGINS", "value": "*"}]))),
        missing=one(
            lambda: ingress(
                {"nginx.ingress.kubernetes.io/enable-cors": "true"}  # no cors-allow-origin
            )
        ),
        missing_fails=True,
        unknown=one(
            lambda: deployment(container(env=[{"name": "CORS_ORIGINS", "value": UNKNOWN}]))
        ),
    ),
    "k8s-resource-limits": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(resources={"requests": {"cpu": "1"}}))),
        missing=one(lambda: deployment(container(resources=None))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(resources=UNKNOWN))),
    ),
    "docker-resource-limits": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(memory=None, cpus=None)),
        missing=one(lambda: docker(memory=None)),
        missing_fails=True,
        unknown=one(lambda: docker(memory=UNKNOWN)),
    ),
    "image-tag-pinned": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(image="ghcr.io/safeguard/api:latest"))),
        missing=one(lambda: deployment(container(image="ghcr.io/safeguard/api"))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(image=UNKNOWN))),
    ),
    "k8s-read-only-root-filesystem": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(**_sc(readOnlyRootFilesystem=False)))),
        missing=one(lambda: deployment(container(**_sc(readOnlyRootFilesystem=None)))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(**_sc(readOnlyRootFilesystem=UNKNOWN)))),
    ),
    "docker-read-only-root-filesystem": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(readOnly=False)),
        missing=one(lambda: docker(readOnly=None)),
        missing_fails=True,
        unknown=one(lambda: docker(readOnly=UNKNOWN)),
    ),
    "k8s-drop-capabilities": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(**_sc(capabilities={"drop": ["NET_RAW"]})))),
        missing=one(lambda: deployment(container(**_sc(capabilities=None)))),
        missing_fails=True,
        unknown=one(lambda: deployment(container(**_sc(capabilities={"drop": UNKNOWN})))),
    ),
    "docker-drop-capabilities": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(capabilities={"drops": ["ALL"], "adds": ["SYS_ADMIN"]})),
        missing=one(lambda: docker(capabilities=None)),
        missing_fails=True,
        unknown=one(lambda: docker(capabilities={"drops": UNKNOWN})),
    ),
    "k8s-host-isolation": Cases(
        passing=one(lambda: deployment(hostNetwork=False)),
        failing=one(lambda: deployment(hostPID=True)),
        missing=one(lambda: deployment()),  # no hostNetwork/hostPID/hostIPC: isolated
        missing_fails=False,
        unknown=one(lambda: deployment(hostNetwork=UNKNOWN)),
    ),
    "docker-host-isolation": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(networkMode="host")),
        missing=one(lambda: docker(networkMode=None)),  # Docker's default bridge network
        missing_fails=False,
        unknown=one(lambda: docker(networkMode=UNKNOWN)),
    ),
    "k8s-no-literal-secrets": Cases(
        passing=one(lambda: deployment(container())),
        failing=one(lambda: deployment(container(env=[{"name": "API_TOKEN", "value": "abc123"}]))),
        missing=one(lambda: deployment(container(env=None))),
        missing_fails=False,
        unknown=one(lambda: deployment(container(env=[{"name": "API_TOKEN", "value": UNKNOWN}]))),
    ),
    "docker-no-literal-secrets": Cases(
        passing=one(lambda: docker()),
        failing=one(lambda: docker(envs=["API_TOKEN=abc123"])),
        missing=one(lambda: docker(envs=None)),
        missing_fails=False,
        unknown=one(lambda: docker(envs=["LOG_LEVEL=info", UNKNOWN])),
    ),
    "k8s-loadbalancer-edge-only": Cases(
        passing=one(lambda: _service("LoadBalancer", "edge")),
        failing=one(lambda: _service("LoadBalancer", "api")),
        missing=one(lambda: _service(None)),  # no type: ClusterIP
        missing_fails=False,
        unknown=one(lambda: _service(UNKNOWN)),
    ),
    "k8s-no-default-namespace": Cases(
        passing=one(lambda: deployment()),
        failing=one(lambda: k8s(CONFIG_MAP, "c", namespace="default", data={})),
        missing=one(lambda: deployment(namespace=None)),
        missing_fails=True,
        unknown=one(lambda: deployment(namespace=UNKNOWN)),
    ),
    "k8s-network-policy-coverage": Cases(
        passing=lambda: [deployment(), NP_FOR_API],
        failing=lambda: [deployment(), network_policy({"app.kubernetes.io/name": "web"})],
        missing=lambda: [deployment()],
        missing_fails=True,
        unknown=lambda: [
            deployment(labels={**LABELS, "app.kubernetes.io/name": UNKNOWN}),
            NP_FOR_API,
        ],
    ),
    "no-wildcard-cors-from-configmaps": Cases(
        passing=lambda: [
            deployment(container(env=[CORS_FROM_SETTINGS])),
            k8s(CONFIG_MAP, "settings", data={"cors-all": "false"}),
        ],
        failing=lambda: [
            deployment(container(env=[CORS_FROM_SETTINGS])),
            k8s(CONFIG_MAP, "settings", data={"cors-all": "true"}),
        ],
        # The ConfigMap is not part of the stack: nothing to read, nothing to judge.
        missing=lambda: [deployment(container(env=[CORS_FROM_SETTINGS]))],
        missing_fails=False,
        unknown=lambda: [
            deployment(container(env=[CORS_FROM_SETTINGS])),
            k8s(CONFIG_MAP, "settings", data={"cors-all": UNKNOWN}),
        ],
    ),
    "k8s-pdb-coverage": Cases(
        passing=lambda: [deployment(replicas=3), NP_FOR_API, PDB_FOR_API],
        failing=lambda: [
            deployment(replicas=3),
            NP_FOR_API,
            pdb({"app.kubernetes.io/name": "web"}),
        ],
        missing=lambda: [deployment(replicas=None), NP_FOR_API],  # one replica: no PDB needed
        missing_fails=False,
        unknown=lambda: [deployment(replicas=UNKNOWN), NP_FOR_API],
    ),
}


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR) as process:
        process.configure(None)
        yield process


def _diagnostics(pack: PolicyPackProcess, policy: str, resources: list[Resource]) -> list:
    kind = pack.info().policy(policy).kind
    if kind == "stack":
        found = pack.analyze_stack(resources)
    else:
        found = [d for r in resources for d in pack.analyze(r)]
    return [d for d in found if d.policy_name == policy]


def _findings(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if "during preview" not in d.message]


def test_every_policy_of_the_pack_has_its_four_cases(pack: PolicyPackProcess) -> None:
    assert {p.name for p in pack.info().policies} == set(TABLE)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("policy", sorted(TABLE))
def test_policy_case(pack: PolicyPackProcess, policy: str, case: Case) -> None:
    cases = TABLE[policy]
    level = pack.info().policy(policy).enforcement_level
    factory = {
        "pass": cases.passing,
        "fail": cases.failing,
        "missing": cases.missing,
        "unknown": cases.unknown,
    }[case]

    diagnostics = _diagnostics(pack, policy, factory())
    findings = _findings(diagnostics)

    if case == "pass" or (case == "missing" and not cases.missing_fails):
        assert diagnostics == [], [d.message for d in diagnostics]
    elif case in ("fail", "missing"):
        assert findings, f"{policy} did not fire on its {case} case"
        assert {d.enforcement_level for d in findings} == {level}
    else:
        notes = [d for d in diagnostics if "during preview" in d.message]
        assert findings == [], [d.message for d in findings]
        assert [d.enforcement_level for d in notes] == ["advisory"]
