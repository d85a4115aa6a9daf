"""`python -m infra export`: the stack in the shape `pulumi stack export` writes, checkable by
`pulumi policy analyze --file` (which has no stack, no backend and no ConfigureStack)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from infra.__main__ import main
from infra.offline.analyzer import PolicyPackProcess, Provider, Resource, Secret
from infra.offline.wire import SECRET_SIG, SIG_KEY, UNKNOWN
from tests.support.mocks import STACKS
from tests.support.policies import CONFIG_DIR, PACK_DIR


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("export")
    documents = {}
    for stack in STACKS:
        assert main(["export", "--stack", stack, "--out", str(out / f"{stack}.json")]) == 0
        documents[stack] = json.loads((out / f"{stack}.json").read_text())
    return documents


def _secrets(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        if SIG_KEY in value:
            return [value]
        return [s for v in value.values() for s in _secrets(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secrets(v)]
    return []


@pytest.mark.parametrize("stack", STACKS)
def test_export_is_a_version_3_deployment(exported: dict[str, Any], stack: str) -> None:
    document = exported[stack]

    assert document["version"] == 3 and set(document) == {"version", "deployment"}
    manifest = document["deployment"]["manifest"]
    assert manifest["magic"] == hashlib.sha256(manifest["version"].encode()).hexdigest()
    assert UNKNOWN not in json.dumps(document)


@pytest.mark.parametrize("stack", STACKS)
def test_resources_are_ordered_and_linked_as_the_engine_requires(
    exported: dict[str, Any], stack: str
) -> None:
    resources = exported[stack]["deployment"]["resources"]
    root = resources[0]

    assert (root["type"], root["custom"], root["urn"]) == (
        "pulumi:pulumi:Stack",
        False,
        f"urn:pulumi:{stack}::safeguard::pulumi:pulumi:Stack::safeguard-{stack}",
    )
    assert "id" not in root and root["outputs"]["environment"]
    seen: dict[str, dict[str, Any]] = {}
    for resource in resources:
        urn = resource["urn"]
        assert urn not in seen, f"{urn} listed twice"
        assert set(resource) >= {"urn", "custom", "type"}
        assert ("id" in resource) == resource["custom"], urn
        for earlier in [resource.get("parent"), *resource.get("dependencies", [])]:
            assert earlier is None or earlier in seen, f"{urn} comes before {earlier}"
        if resource["type"].startswith("pulumi:providers:"):
            assert "parent" not in resource and "provider" not in resource
            assert resource["inputs"]["__internal"] == {}
            assert "__internal" not in resource["outputs"]
        elif resource["custom"]:
            provider_urn, _, provider_id = resource["provider"].rpartition("::")
            assert seen[provider_urn]["id"] == provider_id, urn
            assert (
                seen[provider_urn]["type"] == f"pulumi:providers:{resource['type'].split(':')[0]}"
            )
        seen[urn] = resource


def test_ids_are_the_providers_and_inputs_are_checked(exported: dict[str, Any]) -> None:
    resources = {
        r["urn"].rsplit("::", 1)[1]: r for r in exported["staging"]["deployment"]["resources"]
    }

    deployment = resources["app-deployment"]
    assert deployment["id"] == "safeguard-staging/app"
    assert deployment["outputs"]["__inputs"] == deployment["inputs"]
    assert deployment["outputs"]["__initialApiVersion"] == "apps/v1"
    assert resources["postgres-password"]["id"] == "none"
    secret = resources["app-secret"]
    # Check turned stringData into base64 data, secret as a whole.
    assert "stringData" not in secret["inputs"]
    data = json.loads(secret["inputs"]["data"]["plaintext"])
    assert set(data) == {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    assert base64.b64decode(data["DATABASE_URL"]).decode().startswith("postgresql://")


def test_secrets_are_plaintext_json_text(exported: dict[str, Any]) -> None:
    root = exported["production"]["deployment"]["resources"][0]
    found = _secrets(exported["production"])

    assert found and all(set(s) == {SIG_KEY, "plaintext"} for s in found)
    assert {s[SIG_KEY] for s in found} == {SECRET_SIG}
    url = json.loads(root["outputs"]["postgres_url"]["plaintext"])
    assert url.startswith("postgresql://safeguard:")
    password = json.loads(
        next(
            r for r in exported["production"]["deployment"]["resources"]
            if r["type"] == "random:index/randomPassword:RandomPassword"
        )["outputs"]["result"]["plaintext"]
    )  # fmt: skip
    assert isinstance(password, str) and len(password) >= 16


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return Secret(_decode(json.loads(value["plaintext"])))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _as_policy_analyze(document: dict[str, Any]) -> list[Resource]:
    """What `pulumi policy analyze --file` sends: every resource in file order, its inputs to
    Remediate and Analyze and its outputs to AnalyzeStack, with its provider from the file
    (pulumi/pulumi@v3.259.0:pkg/resource/deploy/analyze_snapshot.go#AnalyzeSnapshot)."""
    resources = document["deployment"]["resources"]
    by_urn = {r["urn"]: r for r in resources}
    sent = []
    for r in resources:
        provider = None
        if "provider" in r:
            p = by_urn[r["provider"].rpartition("::")[0]]
            provider = Provider(
                type=p["type"],
                name=p["urn"].rsplit("::", 1)[1],
                urn=p["urn"],
                properties=_decode(p.get("inputs", {})),
            )
        sent.append(
            Resource(
                type=r["type"],
                name=r["urn"].rsplit("::", 1)[1],
                urn=r["urn"],
                properties=_decode(r.get("inputs", {})),
                outputs=_decode(r.get("outputs", {})),
                parent=r.get("parent", ""),
                provider=provider,
                dependencies=r.get("dependencies", []),
            )
        )
    return sent


@pytest.mark.parametrize("stack", STACKS)
def test_export_passes_the_pack_as_policy_analyze_would_run_it(
    exported: dict[str, Any], stack: str
) -> None:
    with PolicyPackProcess(PACK_DIR, stack=stack) as pack:
        pack.configure(CONFIG_DIR / f"{stack}.json")
        analyzed, stack_findings = pack.analyze_all(_as_policy_analyze(exported[stack]))

    found = [d for _, diagnostics in analyzed for d in diagnostics] + stack_findings
    assert [d.message for d in found if d.enforcement_level == "mandatory"] == []
    # Known values only: no "can't run policy ... during preview" notes.
    assert [d.message for d in found if d.unknown_during_preview] == []


def test_unknown_stack_exits_two(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["export", "--stack", "nope", "--out", str(tmp_path / "x.json")])

    assert code == 2 and not (tmp_path / "x.json").exists()
    assert "nope" in capsys.readouterr().err


def test_a_read_is_exported_external_and_the_pack_finds_nothing_on_it(
    exported: dict[str, Any],
) -> None:
    resources = exported["staging"]["deployment"]["resources"]
    by_name = {r["urn"].rsplit("::", 1)[1]: r for r in resources}
    read, nginx = by_name["nginx-tls"], by_name["nginx-deployment"]

    assert read["external"] is True and "external" not in nginx
    assert read["id"] == "safeguard-staging/safeguard-staging-tls"
    assert read["inputs"] == {}  # what its `get` sent; the live object is its outputs
    assert read["outputs"]["metadata"] == {
        "name": "safeguard-staging-tls",
        "namespace": "safeguard-staging",
    }
    assert read["urn"] in nginx["dependencies"]
    assert resources.index(read) < resources.index(nginx)
    with PolicyPackProcess(PACK_DIR, stack="staging") as pack:
        pack.configure(CONFIG_DIR / "staging.json")
        analyzed, _ = pack.analyze_all(_as_policy_analyze(exported["staging"]))
    assert [d.message for r, found in analyzed if r.urn == read["urn"] for d in found] == []
