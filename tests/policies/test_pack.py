"""The pack and its configuration as the engine reconciles it, compliant resources passing
every policy, and the pack process started both ways the CLI starts it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.offline.analyzer import (
    AnalyzerInfo,
    PolicyPackError,
    PolicyPackProcess,
    Resource,
    load_pack_config,
    parse_pack_config,
    reconcile_config,
)
from infra.offline.wire import ASSET_SIG, SIG_KEY
from tests.support.diagnostics import fired, only
from tests.support.policies import (
    CONFIG_DIR,
    PACK_DIR,
    TYPES,
    container,
    deployment,
    docker,
    init_container,
    workload,
)

MANDATORY = {
    "k8s-no-root",
    "docker-no-root",
    "k8s-probes",
    "docker-healthcheck",
    "no-wildcard-cors",
    "no-wildcard-cors-from-configmaps",
}


# --- the pack and its configuration ----------------------------------------------------------


def test_pack_lists_its_policies_with_default_levels(pack: PolicyPackProcess) -> None:
    info = pack.info()

    assert info.name == "safeguard" and info.supports_config
    levels = {p.name: p.enforcement_level for p in info.policies}
    assert {n for n, level in levels.items() if level == "mandatory"} == MANDATORY
    assert {n for n, level in levels.items() if level != "mandatory"} == {
        n for n in levels if n not in MANDATORY
    }
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", name) for name in levels)
    assert {p.name for p in info.policies if p.kind == "stack"} == {
        "k8s-network-policy-coverage",
        "k8s-pdb-coverage",
        "no-wildcard-cors-from-configmaps",
    }
    assert info.policy("k8s-loadbalancer-edge-only").config_schema["edgeComponents"]["default"] == [
        "edge"
    ]


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_stack_config_files_name_only_existing_policies(
    pack: PolicyPackProcess, stack: str
) -> None:
    raw = load_pack_config(CONFIG_DIR / f"{stack}.json")
    known = {p.name for p in pack.info().policies}

    assert set(raw) - {"all"} <= known
    reconcile_config(pack.info(), raw)  # raises on a config the engine would refuse


def test_production_makes_every_policy_mandatory_and_dev_keeps_defaults(
    pack: PolicyPackProcess,
) -> None:
    info = pack.info()
    production = reconcile_config(info, load_pack_config(CONFIG_DIR / "production.json"))
    dev = reconcile_config(info, load_pack_config(CONFIG_DIR / "dev.json"))

    assert {name for name, c in production.items() if c.enforcement_level != "mandatory"} == set()
    assert {p.name: dev[p.name].enforcement_level for p in info.policies} == {
        p.name: p.enforcement_level for p in info.policies
    }


def test_all_sets_every_level_and_named_entries_override_it(pack: PolicyPackProcess) -> None:
    config = reconcile_config(pack.info(), {"all": "mandatory", "k8s-probes": "advisory"})

    assert {n for n, c in config.items() if c.enforcement_level != "mandatory"} == {"k8s-probes"}


def test_advisory_policy_becomes_mandatory_under_production_config(
    pack_process: PolicyPackProcess,
) -> None:
    unpinned = deployment(container(image="ghcr.io/safeguard/api:latest"))

    pack_process.configure(CONFIG_DIR / "dev.json")
    dev = pack_process.analyze(unpinned)
    pack_process.configure(CONFIG_DIR / "production.json")
    production = pack_process.analyze(unpinned)

    assert only(dev, "image-tag-pinned", "advisory")
    assert only(production, "image-tag-pinned", "mandatory")


def test_config_that_breaks_the_schema_is_refused(pack: PolicyPackProcess) -> None:
    with pytest.raises(ValueError, match="edgeComponents"):
        pack.configure({"k8s-loadbalancer-edge-only": {"edgeComponents": "edge"}})


def test_policy_can_be_disabled_by_config(pack: PolicyPackProcess) -> None:
    unpinned = deployment(container(image="nginx"))
    pack.configure({"image-tag-pinned": "disabled"})

    assert pack.analyze(unpinned) == []


def test_remediate_answers_at_once_unless_a_policy_remediates(
    pack_process: PolicyPackProcess,
) -> None:
    unpinned = deployment(container(image="nginx"))
    # An asset marker without its fields: the SDK fails to deserialize it, so only an answer
    # that never reads the properties can succeed.
    unreadable = Resource(
        type=TYPES["Deployment"], name="x", properties={"x": {SIG_KEY: ASSET_SIG}}
    )

    pack_process.configure(None)
    quick = [pack_process.remediate(r) for r in (unpinned, unreadable)]
    pack_process.configure({"image-tag-pinned": "remediate"})
    try:
        sdk = pack_process.remediate(unpinned)
        with pytest.raises(PolicyPackError, match="Invalid asset"):
            pack_process.remediate(unreadable)
    finally:
        pack_process.configure(None)

    assert all(list(q.remediations) == [] == list(q.not_applicable) for q in quick)
    # The SDK's own answer: the policy has no remediation, so it is not applicable.
    assert [n.policy_name for n in sdk.not_applicable] == ["image-tag-pinned"]


# --- compliant resources pass everything ------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_compliant_workload_passes_every_policy(production: PolicyPackProcess, kind: str) -> None:
    resource = workload(kind, container(), initContainers=[init_container()])

    assert production.analyze(resource) == []


def test_compliant_docker_container_passes_every_policy(production: PolicyPackProcess) -> None:
    assert production.analyze(docker()) == []


# --- starting the pack -----------------------------------------------------------------------


@pytest.mark.parametrize("cwd", [PACK_DIR.parent, PACK_DIR], ids=["repo-root", "pack-dir"])
def test_pack_also_serves_when_run_as_a_script(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    monkeypatch.chdir(cwd)

    with PolicyPackProcess(PACK_DIR, launcher="script") as pack:
        diagnostics = pack.analyze(docker(user="root"))

    assert fired(diagnostics) == {"docker-no-root"}


def test_startup_failure_shows_the_pack_stderr(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text("raise SystemExit('policy pack exploded: bad import')\n")
    process = PolicyPackProcess(tmp_path, startup_timeout=30)

    with pytest.raises(PolicyPackError, match="policy pack exploded: bad import"), process:
        pass


@pytest.mark.parametrize(
    ("typo", "closest"),
    [("k8s-no-rot", "k8s-no-root"), ("image-tag-pined", "image-tag-pinned"), ("ALL", "all")],
)
def test_unknown_policy_names_are_refused_naming_the_closest(
    pack: PolicyPackProcess, typo: str, closest: str
) -> None:
    # Stricter than the CLI, which passes the key on and lets the pack ignore it: the typo
    # would leave the policy meant at its default level.
    names = [p.name for p in pack.info().policies]
    expected = closest if closest in names else None

    with pytest.raises(ValueError, match=f'unknown policy "{typo}"') as refused:
        reconcile_config(pack.info(), {typo: "mandatory"})

    if expected is not None:
        assert f'did you mean "{expected}"?' in str(refused.value)


@pytest.mark.parametrize(
    ("environments", "error"),
    [
        (["org/env"], None),
        ([], None),
        ("org/env", '"environments" must be an array of strings, got a string'),
        (["org/env", 3], '"environments\\[1\\]" must be a string, got a number'),
    ],
)
def test_environments_key_is_accepted_as_the_cli_accepts_it(
    pack: PolicyPackProcess, environments: object, error: str | None
) -> None:
    config = {"environments": environments, "k8s-probes": "advisory"}

    if error is None:
        reconciled = reconcile_config(pack.info(), config)
        assert "environments" not in reconciled
        assert reconciled["k8s-probes"].enforcement_level == "advisory"
        assert parse_pack_config(config).environments == tuple(environments)  # type: ignore[arg-type]
    else:
        with pytest.raises(ValueError, match=error):
            reconcile_config(pack.info(), config)


def test_entry_without_a_level_after_reconciling_is_refused(pack: PolicyPackProcess) -> None:
    # "all" with properties only reaches Configure without a level: the CLI refuses it.
    with pytest.raises(ValueError, match="all: invalid enforcement level ''"):
        reconcile_config(pack.info(), {"all": {"someProperty": 1}})


def test_config_file_format_matches_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"all": "mandatory", "image-tag-pinned": {"enforcementLevel": "x"}}))

    with pytest.raises(ValueError, match="not a valid enforcement level"):
        reconcile_config(
            AnalyzerInfo(name="x", version="0", supports_config=True, policies=()),
            load_pack_config(path),
        )
