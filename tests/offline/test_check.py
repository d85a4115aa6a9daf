"""The offline policy gate, `python -m infra check`: the project's stacks, a deliberately unsafe
program and plain manifests, each run through the real pack process over the Analyzer protocol.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from infra.offline import check
from infra.offline.analyzer import PolicyPackProcess
from infra.offline.check import Report, check_manifests, check_program, load_manifests, type_token
from infra.offline.runtime import run_program
from spec.probes import HttpGet, Probe, Probes
from spec.service import Compute, Container
from tests.fixtures import unsafe_program
from tests.support.cli import run_check
from tests.support.manifests import deployment

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
PRODUCTION_CONFIG = check.CONFIG_DIR / "production.json"
STACKS = ("dev", "staging", "production")

UNSAFE_PROGRAM = {
    ("unsafe-api", "k8s-no-root", "mandatory"),
    ("unsafe-api", "k8s-probes", "mandatory"),
    ("unsafe-api", "no-wildcard-cors", "mandatory"),
    ("unsafe-api", "k8s-network-policy-coverage", "advisory"),
    ("unsafe-edge", "no-wildcard-cors", "mandatory"),
    ("unsafe-worker", "docker-no-root", "mandatory"),
    ("unsafe-worker", "docker-healthcheck", "mandatory"),
}
UNSAFE_MANIFESTS = {
    ("shop/legacy", "k8s-no-root", "mandatory"),
    ("shop/legacy", "k8s-probes", "mandatory"),
    ("shop/legacy", "no-wildcard-cors", "mandatory"),
    ("shop/legacy", "image-tag-pinned", "advisory"),
}


def triples(findings: Any) -> set[tuple[str, str, str]]:
    return {(f.name, f.policy, f.level) for f in findings}


def json_triples(findings: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(f["name"], f["policy"], f["level"]) for f in findings}


# --- the project's own stacks ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_project_stack_passes_with_its_pack_config(
    capsys: pytest.CaptureFixture[str], stack: str
) -> None:
    code, out, _ = run_check(capsys, "--stack", stack, "--json")
    report = json.loads(out)

    assert code == 0
    assert report["stack"] == stack and report["config"] == f"policies/config/{stack}.json"
    assert [v for v in report["violations"] if v["level"] == "mandatory"] == []
    assert report["summary"]["mandatory"] == 0 and report["summary"]["passed"] is True
    assert report["resources"] > 40


def test_production_passes_with_every_policy_mandatory(capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.loads(PRODUCTION_CONFIG.read_text())
    assert all(
        (v if isinstance(v, str) else v["enforcementLevel"]) == "mandatory" for v in raw.values()
    )

    code, out, _ = run_check(capsys, "--stack", "production", "--json")

    assert code == 0
    assert json.loads(out)["violations"] == []


def test_dev_exporters_are_exempted_with_their_reason_and_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_check(capsys, "--stack", "dev", "--json")
    exemptions = json.loads(out)["exemptions"]

    assert code == 0
    assert json_triples(exemptions) == {
        ("nginx-exporter-container", "docker-healthcheck", "advisory"),
        ("redis-exporter-container", "docker-healthcheck", "advisory"),
    }
    for exemption in exemptions:
        assert exemption["message"].startswith("exempted: ")
        assert "scratch image" in exemption["message"] and "TargetDown" in exemption["message"]


# --- a deliberately unsafe program ------------------------------------------------------------


def test_unsafe_program_fails_with_exactly_the_expected_violations(
    pack: PolicyPackProcess,
) -> None:
    report = check_program(unsafe_program.program, stack="fixture", pack=pack)

    assert triples(report.violations) == UNSAFE_PROGRAM
    assert triples(report.exemptions) == {("exempt-migrate", "docker-healthcheck", "advisory")}
    assert report.exit_code == 1


def test_pack_config_raises_levels_of_the_same_program(pack: PolicyPackProcess) -> None:
    report = check_program(
        unsafe_program.program, stack="fixture", pack=pack, pack_config=PRODUCTION_CONFIG
    )

    assert triples(report.violations) == {(n, p, "mandatory") for n, p, _ in UNSAFE_PROGRAM}


def test_findings_carry_the_engine_urn_of_their_resource(pack: PolicyPackProcess) -> None:
    report = check_program(unsafe_program.program, stack="fixture", pack=pack)

    urns = {(f.name, f.policy): f.urn for f in report.violations}
    deployment = "urn:pulumi:fixture::safeguard::kubernetes:apps/v1:Deployment::unsafe-api"
    assert urns[("unsafe-api", "k8s-no-root")] == deployment
    # A stack policy's finding comes back from AnalyzeStack under the workload's URN.
    assert urns[("unsafe-api", "k8s-network-policy-coverage")] == deployment


class _Box(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Box", name, None, None)
        k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"namespace": "box"},
            data={"a": "b"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def test_resources_are_sent_with_urn_parent_and_provider_as_the_engine_does() -> None:
    run = run_program(lambda: _Box("box"), stack="fixture", config={})

    subjects = {s.resource.name: s.resource for s in check.subjects_of_run(run, "fixture")}

    box, config_map = subjects["box"], subjects["box-config"]
    assert config_map.urn == (
        "urn:pulumi:fixture::safeguard::test:index:Box$kubernetes:core/v1:ConfigMap::box-config"
    )
    assert config_map.parent == box.urn
    assert box.parent == "urn:pulumi:fixture::safeguard::pulumi:pulumi:Stack::safeguard-fixture"
    assert config_map.provider is not None and box.provider is None
    assert config_map.provider.type == "pulumi:providers:kubernetes"
    assert config_map.provider.name.startswith("default_")
    assert config_map.provider.urn == subjects[config_map.provider.name].urn
    assert "pulumi:pulumi:Stack" in {r.type for r in subjects.values()}


def _reads_a_secret() -> None:
    existing = k8s.core.v1.Secret.get("edge-tls", id="box/edge-tls")
    k8s.core.v1.ConfigMap(
        "uses-it",
        metadata={"namespace": "box"},
        data={"a": "b"},
        opts=pulumi.ResourceOptions(depends_on=[existing]),
    )


def test_a_read_is_never_sent_to_the_pack_but_is_warned_about(pack: PolicyPackProcess) -> None:
    run = run_program(_reads_a_secret, stack="fixture", config={})
    read = "urn:pulumi:fixture::safeguard::kubernetes:core/v1:Secret::edge-tls"

    subjects = {s.resource.urn: s.resource for s in check.subjects_of_run(run, "fixture")}
    uses_it = subjects["urn:pulumi:fixture::safeguard::kubernetes:core/v1:ConfigMap::uses-it"]
    # No Analyze and no AnalyzeStack for a read step: only what depends on it names it.
    assert read not in subjects and read in uses_it.dependencies

    report = check_program(_reads_a_secret, stack="fixture", pack=pack)
    assert [(w.kind, w.message.split(";", 1)[0]) for w in report.warnings] == [
        (
            "read",
            f"kubernetes:core/v1:Secret 'box/edge-tls' is read from the cluster, not created "
            f"(a `get`, {read})",
        )
    ]


# --- output ------------------------------------------------------------------------------------


def test_json_report_shape(pack: PolicyPackProcess) -> None:
    report = check_program(unsafe_program.program, stack="fixture", pack=pack).to_json()

    assert set(report) == {
        "stack",
        "manifests",
        "pack",
        "config",
        "resources",
        "violations",
        "exemptions",
        "unknowns",
        "warnings",
        "summary",
    }
    assert report["warnings"] == []
    assert report["pack"] == {"name": "safeguard", "version": report["pack"]["version"]}
    assert report["pack"]["version"]
    assert {tuple(sorted(v)) for v in report["violations"]} == {
        ("level", "message", "name", "policy", "type", "urn")
    }
    assert report["summary"] == {
        "mandatory": 7,  # k8s-probes reports liveness and readiness separately
        "advisory": 1,
        "exemptions": 1,
        "unknowns": 0,
        "warnings": 0,
        "resources_with_violations": 3,
        "passed": False,
    }
    json.dumps(report)  # serialisable as is


def test_text_report_groups_by_resource_with_levels(pack: PolicyPackProcess) -> None:
    text = check_program(unsafe_program.program, stack="fixture", pack=pack).to_text()
    lines = text.splitlines()

    header = lines.index("kubernetes:apps/v1:Deployment unsafe-api")
    block = [line for line in lines[header + 1 :] if line.startswith("  [")][:5]
    assert [line.split(":")[0].strip() for line in block] == [
        "[mandatory] k8s-no-root",
        "[mandatory] k8s-probes",
        "[mandatory] k8s-probes",
        "[mandatory] no-wildcard-cors",
        "[advisory] k8s-network-policy-coverage",
    ]
    exemptions = lines.index("Exemptions (checks skipped on purpose; review the reasons):")
    assert "docker:index/container:Container exempt-migrate" in lines[exemptions:]
    assert lines[exemptions:].count("docker:index/container:Container unsafe-worker") == 0
    assert lines[-1].startswith(
        "FAILED: 7 mandatory violations and 1 advisory violation in 3 resources; 1 exemption;"
    )


# --- exit codes and errors --------------------------------------------------------------------


def test_unsafe_program_report_exits_one_and_safe_zero(pack: PolicyPackProcess) -> None:
    unsafe = check_program(unsafe_program.program, stack="fixture", pack=pack)
    safe = check_program(lambda: None, stack="fixture", pack=pack)

    assert (unsafe.exit_code, safe.exit_code) == (1, 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--stack", "nope"], "no stack 'nope'"),
        (["--stack", "../dev"], "no stack '../dev'"),
        ([], "needs --stack NAME or --manifests PATH"),
        (["--stack", "dev", "--policy-config", "missing.json"], "missing.json does not exist"),
    ],
)
def test_usage_errors_exit_two(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = run_check(capsys, *args)

    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


def test_invalid_pack_config_exits_two(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"k8s-no-root": "sometimes"}))

    code, _, err = run_check(capsys, "--stack", "dev", "--policy-config", str(config))

    assert code == 2 and "'sometimes' is not a valid enforcement level" in err


def test_misspelt_policy_in_pack_config_exits_two_naming_the_closest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "typo.json"
    config.write_text(json.dumps({"k8s-no-rot": "mandatory"}))

    code, out, err = run_check(capsys, "--stack", "dev", "--policy-config", str(config))

    assert code == 2 and out == ""
    assert 'unknown policy "k8s-no-rot"' in err and 'did you mean "k8s-no-root"?' in err
    assert str(config) in err


def test_esc_environments_in_pack_config_are_accepted_with_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "esc.json"
    config.write_text(json.dumps({"environments": ["org/policy-env"], "k8s-probes": "mandatory"}))

    code, out, _ = run_check(capsys, "--stack", "dev", "--policy-config", str(config), "--json")

    report = json.loads(out)
    assert code == 0
    assert [
        w
        for w in report["warnings"]
        if w["kind"] == "environments"
        and "org/policy-env" in w["message"]
        and "Pulumi Cloud" in w["message"]
    ]


def test_invalid_stack_settings_print_the_settings_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(stack: str) -> tuple[dict[str, str], list[str]]:
        return {"safeguard:platform": "mainframe"}, []

    monkeypatch.setattr("infra.offline.runtime.stack_config", broken)

    code, out, err = run_check(capsys, "--stack", "dev")

    assert code == 2 and out == ""
    assert "platform" in err and "mainframe" in err and "Traceback" not in err


# --- manifests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "kind", "token"),
    [
        ("v1", "Pod", "kubernetes:core/v1:Pod"),
        ("v1", "Service", "kubernetes:core/v1:Service"),
        ("apps/v1", "Deployment", "kubernetes:apps/v1:Deployment"),
        ("networking.k8s.io/v1", "NetworkPolicy", "kubernetes:networking.k8s.io/v1:NetworkPolicy"),
        ("policy/v1", "PodDisruptionBudget", "kubernetes:policy/v1:PodDisruptionBudget"),
        ("batch/v1", "CronJob", "kubernetes:batch/v1:CronJob"),
    ],
)
def test_type_token_of_a_manifest(api_version: str, kind: str, token: str) -> None:
    assert type_token(api_version, kind) == token


def test_helm_output_and_lists_load_as_resources() -> None:
    subjects = load_manifests(FIXTURES / "safe")

    assert [(s.resource.type, s.resource.name, s.source) for s in subjects] == [
        ("kubernetes:batch/v1:CronJob", "shop/shop-backup", "extra/backup.yml#1 items[0]"),
        (
            "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "shop/shop-default-deny",
            "helm-output.yaml#1",
        ),
        ("kubernetes:policy/v1:PodDisruptionBudget", "shop/shop-api", "helm-output.yaml#2"),
        ("kubernetes:core/v1:Service", "shop/shop-api", "helm-output.yaml#3"),
        ("kubernetes:apps/v1:Deployment", "shop/shop-api", "helm-output.yaml#4"),
    ]
    deployment = subjects[-1].resource.properties
    # As the API server reads it: an unquoted date is the string it looks like.
    assert deployment["metadata"]["annotations"]["deployed-at"] == "2024-05-01"


def test_safe_manifests_pass_even_with_every_policy_mandatory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_check(
        capsys,
        "--manifests",
        str(FIXTURES / "safe"),
        "--policy-config",
        str(PRODUCTION_CONFIG),
        "--json",
    )
    report = json.loads(out)

    assert code == 0
    assert report["resources"] == 5 and report["violations"] == []
    assert report["manifests"] == str(FIXTURES / "safe") and report["stack"] is None


def test_unsafe_manifests_fail_with_the_expected_violations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_check(capsys, "--manifests", str(FIXTURES / "unsafe"), "--json")
    report = json.loads(out)

    assert code == 1
    assert json_triples(report["violations"]) == UNSAFE_MANIFESTS
    assert {v["file"] for v in report["violations"]} == {"app.yaml#1"}
    assert json_triples(report["exemptions"]) == {("shop/debug", "k8s-probes", "advisory")}


def test_manifests_with_a_stack_use_its_pack_config(pack: PolicyPackProcess) -> None:
    report = check_manifests(FIXTURES / "unsafe", stack="production", pack=pack)

    assert report.config == "policies/config/production.json"
    assert triples(report.violations) == {(n, p, "mandatory") for n, p, _ in UNSAFE_MANIFESTS}


MALFORMED = {
    "syntax": ("kind: Pod\nmetadata: {name: [unclosed\n", "bad.yaml: not valid YAML", "line"),
    "list-document": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n- just\n- a list\n",
        "bad.yaml#2: is a list, not a Kubernetes object",
        "",
    ),
    "scalar-document": ("just text\n", "bad.yaml#1: is a string, not a Kubernetes object", ""),
    "no-kind": ("apiVersion: v1\nmetadata: {name: a}\n", "bad.yaml#1: kind missing", ""),
    "no-api-version": ("kind: Pod\nmetadata: {name: a}\n", "bad.yaml#1: apiVersion missing", ""),
    "no-name": ("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "metadata.name missing", ""),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifest_is_named_and_exits_two(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    content, expected, also = MALFORMED[case]
    (tmp_path / "good.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\n")
    (tmp_path / "bad.yaml").write_text(content)

    code, out, err = run_check(capsys, "--manifests", str(tmp_path))

    assert code == 2 and out == ""
    assert expected in err and also in err
    assert "good.yaml" not in err and "Traceback" not in err


def test_many_workloads_are_matched_to_their_own_policies(
    pack: PolicyPackProcess, tmp_path: Path
) -> None:
    """Stack policies index selectors: 400 workloads, each selected by its own NetworkPolicy and
    PDB except one, give exactly that one's findings."""
    documents = []
    for index in range(400):
        labels = {"app.kubernetes.io/name": f"app{index}"}
        documents.append(deployment(f"app{index}", "ns", replicas=2, labels=labels))
        if index != 123:
            documents.append(_selecting("networking.k8s.io/v1", "NetworkPolicy", index, labels))
            documents.append(_selecting("policy/v1", "PodDisruptionBudget", index, labels))
    (tmp_path / "many.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))

    report = check_manifests(tmp_path, pack=pack)

    assert report.resources == 400 + 2 * 399
    assert triples(report.violations) == {
        ("ns/app123", "k8s-network-policy-coverage", "advisory"),
        ("ns/app123", "k8s-pdb-coverage", "advisory"),
    }


def _selecting(api_version: str, kind: str, index: int, labels: dict[str, str]) -> dict:
    key = "podSelector" if kind == "NetworkPolicy" else "selector"
    spec: dict[str, Any] = {key: {"matchLabels": labels}}
    if kind == "PodDisruptionBudget":
        spec["minAvailable"] = 1
    metadata = {"name": f"app{index}", "namespace": "ns"}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def test_container_docker_cannot_check_must_say_why() -> None:
    probes = Probes.same(Probe(check=HttpGet(path="/metrics", port=9000)))
    compute = Compute(cpu_request="1m", memory_request="1Mi", cpu_limit="1m", memory_limit="1Mi")
    base: dict[str, Any] = {"image": "x:1", "uid": 1, "gid": 1, "compute": compute}

    with pytest.raises(ValueError, match="set no_docker_healthcheck"):
        Container(name="exporter", probes=probes, http_client=None, **base)
    with pytest.raises(ValueError, match="Docker can check this container"):
        Container(name="app", probes=probes, no_docker_healthcheck="because", **base)


def test_report_exit_code_follows_mandatory_findings_only() -> None:
    advisory_only = Report(
        stack="x",
        manifests=None,
        pack_name="safeguard",
        pack_version="0",
        config=None,
        resources=1,
        violations=(
            check.Finding(
                urn="u",
                type="t",
                name="n",
                policy="image-tag-pinned",
                level="advisory",
                message="m",
            ),
        ),
        exemptions=(),
    )

    assert advisory_only.exit_code == 0 and advisory_only.passed
    assert (
        textwrap.dedent(advisory_only.to_text())
        .splitlines()[-1]
        .startswith("PASSED: 0 mandatory violations and 1 advisory violation in 1 resource;")
    )
