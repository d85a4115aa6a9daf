"""policies/stack.py: every workload selected by a NetworkPolicy, replicated workloads covered
by a PodDisruptionBudget, over the whole stack (AnalyzeStack)."""

from __future__ import annotations

import pytest

from infra.offline.analyzer import PolicyPackProcess, Resource
from infra.offline.wire import UNKNOWN
from tests.support.diagnostics import of, violations
from tests.support.policies import (
    EXEMPT,
    HPA,
    LABELS,
    NETWORK_POLICY,
    deployment,
    k8s,
    network_policy,
    pdb,
)


def test_workload_selected_by_a_network_policy_passes(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze_stack(
        [deployment(), network_policy({"app.kubernetes.io/name": "api"})]
    )

    assert of(diagnostics, "k8s-network-policy-coverage") == []


@pytest.mark.parametrize(
    "policies",
    [
        [],
        [network_policy({"app.kubernetes.io/name": "web"})],
        [network_policy({**LABELS, "tier": "backend"})],
        [network_policy(None, namespace="other")],
    ],
    ids=["none", "other-labels", "superset", "other-namespace"],
)
def test_workload_without_a_selecting_network_policy(
    pack: PolicyPackProcess, policies: list[Resource]
) -> None:
    api = deployment()

    found = violations(pack.analyze_stack([api, *policies]), "k8s-network-policy-coverage")

    assert [(d.urn, d.enforcement_level) for d in found] == [
        ("urn:pulumi:dev::safeguard::kubernetes:apps/v1:Deployment::api", "advisory")
    ]
    assert "namespace 'safeguard'" in found[0].message
    assert "app.kubernetes.io/name=api" in found[0].message


def test_empty_pod_selector_selects_the_whole_namespace(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze_stack([deployment(), network_policy(None)])

    assert of(diagnostics, "k8s-network-policy-coverage") == []


@pytest.mark.parametrize(
    ("operator", "values", "selected"),
    [("In", ["api", "web"], True), ("In", ["web"], False), ("NotIn", ["api"], False)],
)
def test_match_expressions_select(
    pack: PolicyPackProcess, operator: str, values: list[str], selected: bool
) -> None:
    expression = {"key": "app.kubernetes.io/name", "operator": operator, "values": values}
    policy = k8s(NETWORK_POLICY, "np", spec={"podSelector": {"matchExpressions": [expression]}})

    diagnostics = pack.analyze_stack([deployment(), policy])

    assert (violations(diagnostics, "k8s-network-policy-coverage") == []) is selected


def test_selectors_sharing_a_label_each_select_only_their_workload(
    pack: PolicyPackProcess,
) -> None:
    shop = {"app.kubernetes.io/part-of": "shop"}
    # Every selector holds the shared pair; each must still reach (only) its own workload,
    # and all of them a workload whose name is not known yet.
    selectors = [{**shop, "app.kubernetes.io/name": name} for name in ("web", "api", "db")]
    policies = [
        k8s(NETWORK_POLICY, f"np-{i}", spec={"podSelector": {"matchLabels": labels}})
        for i, labels in enumerate(selectors)
    ]
    workloads = [
        deployment(name=name, labels={**shop, "app.kubernetes.io/name": value})
        for name, value in (("api", "api"), ("cache", "cache"), ("worker", UNKNOWN))
    ]

    policy = "k8s-network-policy-coverage"
    found = of(pack.analyze_stack([*workloads, *policies]), policy)

    assert [d.urn.rsplit("::", 1)[-1] for d in violations(found, policy)] == ["cache"]
    notes = [d.message for d in found if "during preview" in d.message]
    assert len(notes) == 1 and "worker: NetworkPolicy selection" in notes[0]
    assert "api:" not in notes[0]


def test_replicated_workload_needs_a_pdb(pack: PolicyPackProcess) -> None:
    covered = [network_policy(None)]

    missing = violations(pack.analyze_stack([deployment(replicas=3), *covered]), "k8s-pdb-coverage")
    with_pdb = pack.analyze_stack(
        [deployment(replicas=3), pdb({"app.kubernetes.io/name": "api"}), *covered]
    )
    single = pack.analyze_stack([deployment(replicas=1), *covered])

    assert [d.urn.rsplit("::", 1)[-1] for d in missing] == ["api"]
    assert "runs 3 replicas" in missing[0].message
    assert with_pdb == [] and single == []


def test_hpa_min_replicas_counts_as_replicas(pack: PolicyPackProcess) -> None:
    hpa = k8s(
        HPA,
        "api",
        spec={
            "minReplicas": 2,
            "maxReplicas": 5,
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        },
    )

    found = violations(
        pack.analyze_stack([deployment(), hpa, network_policy(None)]), "k8s-pdb-coverage"
    )

    assert ["runs 2 replicas" in d.message for d in found] == [True]


def test_stack_policy_exemption_is_listed_per_resource(production: PolicyPackProcess) -> None:
    exempt = deployment(annotations={f"{EXEMPT}k8s-network-policy-coverage": "SEC-7: legacy"})

    diagnostics = production.analyze_stack([exempt])

    assert [
        (d.policy_name, d.enforcement_level, d.urn.rsplit("::", 1)[-1]) for d in diagnostics
    ] == [("k8s-network-policy-coverage", "advisory", "api")]
    assert diagnostics[0].message.startswith("exempted: SEC-7: legacy")


def test_unknown_labels_in_stack_give_a_preview_note(pack: PolicyPackProcess) -> None:
    api = deployment(labels={"app.kubernetes.io/name": UNKNOWN})

    diagnostics = pack.analyze_stack([api, network_policy({"app.kubernetes.io/name": "api"})])

    assert violations(diagnostics, "k8s-network-policy-coverage") == []
    assert [d.enforcement_level for d in of(diagnostics, "k8s-network-policy-coverage")] == [
        "advisory"
    ]
