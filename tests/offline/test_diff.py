"""Offline diff: real changes to a copy of the project in its own git repository, classified as
`pulumi preview --diff` would, in text, markdown and JSON, with secrets never shown."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from infra.offline.diff import (
    StackDiff,
    diff_ref,
    diff_stack,
    format_markdown,
    format_text,
    to_json,
)
from infra.offline.diff.tree import Rendered
from infra.offline.render import fingerprints, render
from infra.offline.render import index as render_index
from infra.offline.runtime import PROJECT_ROOT, is_secret, run_program, stack_config
from tests.fixtures import docker_service
from tests.support.project import copy_checkout

OLD_TOKEN = "hook-token-old-5f1c9a"
NEW_TOKEN = "hook-token-new-8e2d7b"
GIT = ("git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "gc.auto=0")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _edit_stack(repo: Path, stack: str, section: str, **values: object) -> None:
    path = repo / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"].setdefault(f"safeguard:{section}", {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _set(repo: Path, stack: str, key: str, value: object) -> None:
    path = repo / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    data["config"][f"safeguard:{key}"] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _diff(repo: Path, *args: str) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "infra", "diff", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project (tracked and new files) committed as tag `base`, a commit with a
    broken dev stack file tagged `broken`, and uncommitted changes in the working tree: staging
    and dev edited, stack `qa` added, stack `gone` removed (each with its pack config)."""
    root = copy_checkout(tmp_path_factory.mktemp("project"))
    _git(root, "init", "-q")
    _set(root, "staging", "alertWebhookCritical", f"https://hooks.example.com/{OLD_TOKEN}")
    shutil.copy2(root / "Pulumi.dev.yaml", root / "Pulumi.gone.yaml")
    shutil.copy2(root / "policies/config/dev.json", root / "policies/config/gone.json")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "tag", "base")
    _set(root, "dev", "platform", "nomad")
    _git(root, "commit", "-q", "-am", "broken")
    _git(root, "tag", "broken")
    _git(root, "reset", "-q", "--hard", "base")

    _edit_stack(root, "staging", "app", replicas=3)
    _edit_stack(root, "staging", "postgres", storageSize="8Gi", backupEnabled=False)
    _edit_stack(root, "staging", "edge", ingressClass="nginx")
    _set(root, "staging", "alertWebhookCritical", f"https://hooks.example.com/{NEW_TOKEN}")
    _edit_stack(root, "dev", "app", resources={"memoryLimit": "512Mi"})
    _edit_stack(root, "dev", "edge", publicPort=8081)
    (root / "Pulumi.gone.yaml").unlink()
    qa = yaml.safe_load((root / "Pulumi.staging.yaml").read_text())
    qa["config"]["safeguard:namespace"] = "safeguard-qa"
    (root / "Pulumi.qa.yaml").write_text(yaml.safe_dump(qa, sort_keys=False))
    shutil.copy2(root / "policies/config/staging.json", root / "policies/config/qa.json")
    return root


@pytest.fixture(scope="module")
def diffs(repo: Path) -> list[StackDiff]:
    """staging and dev, base against the working tree, rendered once for every format test."""
    return diff_ref(["staging", "dev"], "base", root=repo)


@pytest.fixture(scope="module")
def as_json(diffs: list[StackDiff]) -> str:
    return to_json(diffs, "base")


def _resources(as_json: str, stack: str) -> dict[str, dict]:
    stacks = {s["stack"]: s for s in json.loads(as_json)["stacks"]}
    return {r["file"]: r for r in stacks[stack]["resources"]}


def _change(resource: dict, path: str) -> dict:
    matches = [c for c in resource["changes"] if c["path"] == path]
    assert len(matches) == 1, [c["path"] for c in resource["changes"]]
    return matches[0]


def test_kubernetes_changes_are_classified(as_json: str) -> None:
    resources = _resources(as_json, "staging")

    app = resources["kubernetes/Deployment-app-deployment.yaml"]
    assert app["action"] == "update" and app["type"] == "kubernetes:apps/v1:Deployment"
    replicas = _change(app, "spec.replicas")
    assert (replicas["op"], replicas["old"], replicas["new"], replicas["replaces"]) == (
        "update",
        2,
        3,
        None,
    )

    postgres = resources["kubernetes/StatefulSet-postgres-statefulset.yaml"]
    assert postgres["action"] == "replace" and postgres["name"] == "postgres"
    storage = _change(postgres, "spec.volumeClaimTemplates[0].spec.resources.requests.storage")
    assert (storage["old"], storage["new"]) == ("5Gi", "8Gi")
    assert "volumeClaimTemplates" in storage["replaces"]

    assert resources["kubernetes/CronJob-postgres-backup-cronjob.yaml"]["action"] == "delete"
    claim = resources["kubernetes/PersistentVolumeClaim-postgres-backup-backups.yaml"]
    assert claim["action"] == "delete"
    created = [f for f, r in resources.items() if r["action"] == "create"]
    assert created == ["kubernetes/Ingress-nginx-ingress.yaml"]


def test_docker_container_changes_follow_the_provider_schema(as_json: str) -> None:
    resources = _resources(as_json, "dev")
    app = resources["docker/Container-app-container.yaml"]
    assert app["action"] == "update"
    assert _change(app, "memory")["new"] == 512
    nginx = resources["docker/Container-nginx-container.yaml"]
    assert nginx["action"] == "replace"
    port = _change(nginx, "ports[0].external")
    assert (port["old"], port["new"]) == (8080, 8081) and "ports" in port["replaces"]
    # The exporter joins nginx's network namespace by container id: a new nginx container
    # means a new exporter too.
    exporter = resources["docker/Container-nginx-exporter-container.yaml"]
    assert exporter["action"] == "replace"
    assert "networkMode" in _change(exporter, "networkMode")["replaces"]


def test_json_summary_counts_the_listed_resources(as_json: str) -> None:
    document = json.loads(as_json)
    assert document["base"] == "base"
    assert [s["stack"] for s in document["stacks"]] == ["staging", "dev"]
    for stack in document["stacks"]:
        summary = stack["summary"]
        for action in ("create", "update", "replace", "delete"):
            listed = [r for r in stack["resources"] if r["action"] == action]
            assert summary[action] == len(listed), (stack["stack"], action)
        assert summary["unchanged"] > 20 and stack["base_missing"] is False


def test_markdown_has_a_table_per_stack_then_collapsed_details(diffs: list[StackDiff]) -> None:
    text = format_markdown(diffs, "base")
    staging = text.index("### Stack `staging` against `base`: 1 to create, ")
    dev = text.index("### Stack `dev` against `base`: 2 to update, 2 to replace, ")
    assert staging == 0 < dev
    for start, end in ((staging, dev), (dev, len(text))):
        section = text[start:end]
        table = section.index("| action | type | name | file |")
        assert table < section.index("<details>") < section.index("</details>")
    # Staging replaces the postgres StatefulSet and deletes the backups' claim; dev replaces
    # only containers, whose data lives in volumes that stay.
    assert "> [!WARNING]\n> Data at risk: " in text[staging:dev]
    assert "**replace** StatefulSet `postgres`" in text[staging:dev]
    assert "**delete** PersistentVolumeClaim `postgres-backup-backups`" in text[staging:dev]
    assert "[!WARNING]" not in text[dev:]
    assert (
        "| **replace** | `kubernetes:apps/v1:StatefulSet` | `postgres` | "
        "`kubernetes/StatefulSet-postgres-statefulset.yaml` |" in text
    )
    assert "~ spec.replicas: 2 => 3" in text
    assert "~ ports[0].external: 8080 => 8081  [forces replacement:" in text


def test_text_lists_actions_and_property_paths(diffs: list[StackDiff]) -> None:
    lines = format_text(diffs[:1], "base").splitlines()
    assert lines[0].startswith("Stack staging (base => working tree): 1 to create, ")
    assert lines[1].startswith("  WARNING: data at risk: ") and "StatefulSet postgres" in lines[1]
    header = next(i for i, line in enumerate(lines[2:], 2) if "StatefulSet postgres " in line)
    assert lines[header].split()[:2] == ["+-", "replace"]
    assert (
        lines[header + 1]
        .strip()
        .startswith(
            '~ spec.volumeClaimTemplates[0].spec.resources.requests.storage: "5Gi" => "8Gi"'
        )
    )
    assert any(line.strip() == "~ spec.replicas: 2 => 3" for line in lines)
    assert any(line.split()[:2] == ["-", "delete"] and "CronJob" in line for line in lines)


def test_secret_values_never_appear(diffs: list[StackDiff]) -> None:
    # The webhook changed between the base and the working tree.
    for text in (to_json(diffs, "base"), format_markdown(diffs, "base"), format_text(diffs, "b")):
        assert OLD_TOKEN not in text and NEW_TOKEN not in text


def test_a_stack_new_since_the_base_is_all_creates(repo: Path) -> None:
    result = _diff(repo, "--stack", "qa", "--base", "base", "--format", "json")
    assert result.code == 3, result.err
    (stack,) = json.loads(result.out)["stacks"]
    assert stack["base_missing"] is True and stack["summary"]["unchanged"] == 0
    actions = {r["action"] for r in stack["resources"]}
    assert actions == {"create"} and stack["summary"]["create"] > 40


def test_a_stack_removed_since_the_base_is_all_deletes(repo: Path) -> None:
    (diff,) = diff_ref(["gone"], "base", root=repo)
    assert diff.resources and {r.action for r in diff.resources} == {"delete"}
    assert "docker/Container-app-container.yaml" in {r.file for r in diff.resources}


def test_a_base_that_cannot_render_is_an_error_and_leaves_no_worktree(repo: Path) -> None:
    result = _diff(repo, "--stack", "dev", "--base", "broken")
    assert result.code == 2 and result.out == ""
    assert "rendering stack dev at base broken failed" in result.err
    assert "nomad" in result.err  # the render's own message, passed on
    worktrees = _git(repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 1


def test_unknown_ref_and_unknown_stack_are_errors(repo: Path) -> None:
    bad_ref = _diff(repo, "--stack", "staging", "--base", "no-such-branch")
    assert bad_ref.code == 2 and "unknown git ref 'no-such-branch'" in bad_ref.err
    bad_stack = _diff(repo, "--stack", "nope", "--base", "base")
    assert bad_stack.code == 2
    assert bad_stack.err.startswith("no stack 'nope': there is no Pulumi.nope.yaml (stacks: ")


def test_no_changes_against_a_rendered_directory_exits_zero(repo: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "infra", "render", "--stack", "production", "--out", str(tmp_path)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    result = _diff(
        repo, "--stack", "production", "--base-dir", str(tmp_path), "--format", "markdown"
    )
    assert result.code == 0, result.err
    assert result.out.startswith(f"### Stack `production` against `{tmp_path}`: no changes, ")
    assert "No changes." in result.out and "<details>" not in result.out


# Rules and masking on hand-made documents -------------------------------------------------------


def _manifest(kind: str, api: str = "v1", name: str = "x", **body: object) -> dict:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "n"}, **body}


def _formats(diff) -> list[str]:
    return [format_text([diff], "b"), format_markdown([diff], "b"), to_json([diff], "b")]


def test_plain_values_of_a_secret_are_masked_in_every_format() -> None:
    old = {"k/Secret-s.yaml": _manifest("Secret", stringData={"TOKEN": "plain-old-value"})}
    new = {"k/Secret-s.yaml": _manifest("Secret", stringData={"TOKEN": "plain-new-value"})}
    diff = diff_stack("s", old, new)
    (resource,) = diff.resources
    (change,) = resource.changes
    assert resource.action == "replace"
    assert (change.path, change.old, change.new, change.masked) == (
        "stringData.TOKEN",
        "[secret]",
        "[secret]",
        True,
    )
    for text in _formats(diff):
        assert "plain-old-value" not in text and "plain-new-value" not in text
        assert "stringData.TOKEN" in text


def test_a_value_that_becomes_secret_hides_its_old_value_too() -> None:
    def container(env: str) -> dict:
        return {"type": "docker:index/container:Container", "name": "c", "inputs": {"envs": [env]}}

    old = {"docker/Container-c.yaml": container("API_KEY=plain-key-123")}
    new = {"docker/Container-c.yaml": container("API_KEY=[secret]")}
    diff = diff_stack("s", old, new)
    (change,) = diff.resources[0].changes
    assert change.masked and change.path == "envs[0]"
    for text in _formats(diff):
        assert "plain-key-123" not in text


@pytest.mark.parametrize(
    ("kind", "api", "path", "old", "new", "action"),
    [
        (
            "PersistentVolumeClaim",
            "v1",
            ("spec", "resources", "requests", "storage"),
            "1Gi",
            "2Gi",
            "update",
        ),
        # pulumi-kubernetes updates a claim's resources in place; a shrink fails at `up`.
        (
            "PersistentVolumeClaim",
            "v1",
            ("spec", "resources", "requests", "storage"),
            "2Gi",
            "1Gi",
            "update",
        ),
        ("PersistentVolumeClaim", "v1", ("spec", "storageClassName"), "a", "b", "replace"),
        # Only spec.clusterIP replaces a Service: a type change, to ExternalName too, updates.
        ("Service", "v1", ("spec", "type"), "ClusterIP", "ExternalName", "update"),
        ("Service", "v1", ("spec", "type"), "ClusterIP", "LoadBalancer", "update"),
        ("Deployment", "apps/v1", ("spec", "selector", "matchLabels", "app"), "a", "b", "replace"),
        ("Deployment", "apps/v1", ("spec", "template", "spec", "image"), "a", "b", "update"),
        ("Job", "batch/v1", ("spec", "template", "spec", "image"), "a", "b", "replace"),
        ("StatefulSet", "apps/v1", ("spec", "serviceName"), "a", "b", "replace"),
        ("ConfigMap", "v1", ("metadata", "labels", "tier"), "a", "b", "update"),
        ("ConfigMap", "v1", ("metadata", "name"), "a", "b", "replace"),
    ],
)
def test_replacement_rules(kind, api, path, old, new, action) -> None:
    def document(value: str) -> dict:
        body = _manifest(kind, api)
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        return body

    diff = diff_stack("s", {"f.yaml": document(old)}, {"f.yaml": document(new)})
    assert diff.resources[0].action == action


def test_multi_line_values_show_as_a_line_diff() -> None:
    old = {"c.yaml": _manifest("ConfigMap", data={"nginx.conf": "a\nb\nc\n"})}
    new = {"c.yaml": _manifest("ConfigMap", data={"nginx.conf": "a\nB\nc\n"})}
    text = format_text([diff_stack("s", old, new)], "b")
    assert "    -b" in text and "    +B" in text
    assert '~ data["nginx.conf"]:  [forces replacement: ConfigMaps' in text


# The data-loss warning and the markdown for review --------------------------------------------


def _volume(name: str) -> dict:
    return {"type": "docker:index/volume:Volume", "name": name, "inputs": {"name": name}}


def test_a_config_map_only_change_warns_of_no_data_loss() -> None:
    old = {"kubernetes/ConfigMap-x.yaml": _manifest("ConfigMap", data={"a": "1"})}
    new = {"kubernetes/ConfigMap-x.yaml": _manifest("ConfigMap", data={"a": "2"})}
    diff = diff_stack("s", old, new)

    assert diff.resources[0].action == "replace" and diff.data_at_risk() == ()
    text, markdown, as_json = _formats(diff)
    assert "WARNING" not in text and "[!WARNING]" not in markdown
    assert json.loads(as_json)["stacks"][0]["data_at_risk"] == []


def test_a_replaced_statefulset_and_a_deleted_volume_are_named_in_every_format() -> None:
    def postgres(storage: str) -> dict:
        claim = {"spec": {"resources": {"requests": {"storage": storage}}}}
        return _manifest(
            "StatefulSet", "apps/v1", "postgres", spec={"volumeClaimTemplates": [claim]}
        )

    old = {
        "kubernetes/StatefulSet-postgres.yaml": postgres("5Gi"),
        "docker/Volume-pgdata.yaml": _volume("pgdata"),
    }
    new = {"kubernetes/StatefulSet-postgres.yaml": postgres("8Gi")}
    diff = diff_stack("s", old, new)

    text, markdown, as_json = _formats(diff)
    lines = text.splitlines()
    assert lines[1] == (
        "  WARNING: data at risk: delete Volume pgdata (docker/Volume-pgdata.yaml), replace "
        "StatefulSet postgres (kubernetes/StatefulSet-postgres.yaml). A replaced or deleted "
        "StatefulSet, claim or volume can lose its data; take a backup first (RELEASING.md, "
        '"A database backup before a risky release").'
    )
    assert "> Data at risk: **delete** Volume `pgdata`" in markdown
    assert "**replace** StatefulSet `postgres`" in markdown and "RELEASING.md" in markdown
    assert json.loads(as_json)["stacks"][0]["data_at_risk"] == [
        {
            "file": "docker/Volume-pgdata.yaml",
            "type": "docker:index/volume:Volume",
            "name": "pgdata",
            "action": "delete",
        },
        {
            "file": "kubernetes/StatefulSet-postgres.yaml",
            "type": "kubernetes:apps/v1:StatefulSet",
            "name": "postgres",
            "action": "replace",
        },
    ]


def test_markdown_groups_by_action_with_diff_lines_unindented() -> None:
    old = {
        "kubernetes/ConfigMap-nginx.yaml": _manifest("ConfigMap", data={"nginx.conf": "a\nb\nc\n"}),
        "kubernetes/Service-api.yaml": _manifest("Service", spec={"type": "ClusterIP"}),
        "kubernetes/Service-old.yaml": _manifest("Service", name="old"),
    }
    new = {
        "kubernetes/ConfigMap-nginx.yaml": _manifest("ConfigMap", data={"nginx.conf": "a\nB\nc\n"}),
        "kubernetes/Service-api.yaml": _manifest("Service", spec={"type": "LoadBalancer"}),
        "kubernetes/Service-new.yaml": _manifest("Service", name="new"),
    }

    markdown = format_markdown([diff_stack("s", old, new)], "b")
    lines = markdown.splitlines()

    actions = [line.split("|")[1].strip() for line in lines if line.startswith("| ")][2:]
    assert actions == ["**replace**", "**delete**", "create", "update"]
    headings = [line for line in lines if line.startswith("#### ")]
    assert headings == ["#### replace (1)", "#### update (1)"]
    assert "-b" in lines and "+B" in lines and " a" in lines
    assert '~ spec.type: "ClusterIP" => "LoadBalancer"' in lines
    # The terminal keeps the diff lines under their property.
    assert "    -b" in format_text([diff_stack("s", old, new)], "b")


# The providers' replacement rules (pulumi-kubernetes v4.32.0 diff.go, kreuzwerker v4.5.0) -----


def _one(diff: StackDiff) -> str:
    (resource,) = diff.resources
    return resource.action


def _edited(document: dict, path: tuple[str, ...], value: object) -> dict:
    body = json.loads(json.dumps(document))
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("kind", "api", "path", "action"),
    [
        ("Pod", "v1", ("spec", "containers", 0, "image"), "replace"),
        ("Pod", "v1", ("spec", "initContainers", 0, "env"), "replace"),
        ("Pod", "v1", ("spec", "serviceAccountName"), "replace"),
        ("Pod", "v1", ("spec", "activeDeadlineSeconds"), "update"),
        ("Pod", "v1", ("metadata", "labels", "tier"), "update"),
        ("PersistentVolume", "v1", ("spec", "nfs", "path"), "replace"),
        ("PersistentVolume", "v1", ("spec", "capacity", "storage"), "update"),
        ("ResourceQuota", "v1", ("spec", "scopes"), "replace"),
        ("ResourceQuota", "v1", ("spec", "hard", "pods"), "update"),
        ("Deployment", "apps/v1beta2", ("spec", "selector", "matchLabels", "app"), "replace"),
        # Not in the provider's table before v1beta2: an update the API server may refuse.
        ("Deployment", "apps/v1beta1", ("spec", "selector", "matchLabels", "app"), "update"),
        ("StatefulSet", "apps/v1beta1", ("spec", "serviceName"), "replace"),
        ("PodDisruptionBudget", "policy/v1beta1", ("spec", "minAvailable"), "replace"),
        ("PodDisruptionBudget", "policy/v1", ("spec", "minAvailable"), "update"),
        ("Job", "batch/v1beta1", ("spec", "template", "spec", "x"), "replace"),
        ("RoleBinding", "rbac.authorization.k8s.io/v1beta1", ("roleRef", "name"), "replace"),
        ("Service", "v1", ("spec", "clusterIP"), "replace"),
        ("PersistentVolumeClaim", "v1", ("spec", "resources", "limits", "storage"), "update"),
    ],
)
def test_kubernetes_rules_by_group_version_and_kind(
    kind: str, api: str, path: tuple, action: str
) -> None:
    base = _edited(_manifest(kind, api), path, "a")
    head = _edited(_manifest(kind, api), path, "b")

    assert _one(diff_stack("s", {"f.yaml": base}, {"f.yaml": head})) == action


def test_a_claim_that_shrinks_is_an_update_that_warns() -> None:
    path = ("spec", "resources", "requests", "storage")
    base = _edited(_manifest("PersistentVolumeClaim"), path, "10Gi")

    shrink = diff_stack("s", {"f.yaml": base}, {"f.yaml": _edited(base, path, "5Gi")})
    grow = diff_stack("s", {"f.yaml": base}, {"f.yaml": _edited(base, path, "20Gi")})

    (resource,) = shrink.resources
    assert resource.action == "update"
    assert [w for w in resource.warnings if "refuses to shrink" in w]
    assert "refuses to shrink" in format_text([shrink], "b")
    assert grow.resources[0].warnings == ()


def _rendered(documents: dict, **kubernetes: str) -> Rendered:
    return Rendered(documents, providers={"kubernetes": kubernetes})


@pytest.mark.parametrize(
    ("kind", "config", "immutable", "action"),
    [
        ("ConfigMap", {}, False, "replace"),
        ("ConfigMap", {"enableConfigMapMutable": "true"}, False, "update"),
        ("ConfigMap", {"enableConfigMapMutable": "true"}, True, "replace"),
        ("Secret", {}, False, "replace"),
        ("Secret", {"enableSecretMutable": "true"}, False, "update"),
        ("Secret", {"enableSecretMutable": "true"}, True, "replace"),
        # One flag does not make the other kind mutable.
        ("Secret", {"enableConfigMapMutable": "true"}, False, "replace"),
    ],
)
def test_config_map_and_secret_mutability_follows_the_provider_config(
    kind: str, config: dict[str, str], immutable: bool, action: str
) -> None:
    extra = {"immutable": True} if immutable else {}
    base = _manifest(kind, data={"a": "b"}, **extra)
    head = _manifest(kind, data={"a": "c"}, **extra)

    diff = diff_stack("s", _rendered({"f.yaml": base}), _rendered({"f.yaml": head}, **config))

    assert _one(diff) == action


def test_mutability_also_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_K8S_ENABLE_CONFIGMAP_MUTABLE", "true")
    base, head = _manifest("ConfigMap", data={"a": "b"}), _manifest("ConfigMap", data={"a": "c"})

    assert _one(diff_stack("s", {"f.yaml": base}, {"f.yaml": head})) == "update"


def test_a_missing_namespace_is_the_default_one() -> None:
    explicit = _manifest("ConfigMap", data={"a": "b"})
    explicit["metadata"]["namespace"] = "default"
    missing = json.loads(json.dumps(explicit))
    del missing["metadata"]["namespace"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}

    namespaced = {**namespace, "metadata": {"name": "team", "namespace": "x"}}
    same = diff_stack(
        "s", {"f.yaml": missing, "n.yaml": namespace}, {"f.yaml": explicit, "n.yaml": namespaced}
    )
    elsewhere = _edited(explicit, ("metadata", "namespace"), "team")
    moved = diff_stack("s", {"f.yaml": missing}, {"f.yaml": elsewhere})

    assert same.resources == () and same.unchanged == 2
    assert _one(moved) == "replace"


def test_docker_sets_ignore_order_and_updatable_inputs_update() -> None:
    def container(**inputs: object) -> dict:
        base = {"envs": ["A=1", "B=2"], "labels": [{"label": "x", "value": "1"}], "cpus": "1"}
        return {
            "type": "docker:index/container:Container",
            "name": "c",
            "inputs": {**base, **inputs},
        }

    reordered = diff_stack("s", {"c.yaml": container()}, {"c.yaml": container(envs=["B=2", "A=1"])})
    reserved = diff_stack("s", {"c.yaml": container()}, {"c.yaml": container(memoryReservation=64)})
    iops = diff_stack("s", {"c.yaml": container()}, {"c.yaml": container(deviceReadIops=[])})
    cpus = diff_stack("s", {"c.yaml": container()}, {"c.yaml": container(cpus="2")})
    env = diff_stack("s", {"c.yaml": container()}, {"c.yaml": container(envs=["B=3", "A=1"])})

    assert reordered.resources == ()
    assert (_one(reserved), _one(iops), _one(cpus), _one(env)) == (
        "update",
        "update",
        "replace",
        "replace",
    )
    (change,) = env.resources[0].changes
    assert (change.path, change.old, change.new) == ("envs[0]", "B=2", "B=3")


# Identity: the URN, as the engine matches old and new state -----------------------------------


class _Component(pulumi.ComponentResource):
    def __init__(self, name: str, aliases: list[pulumi.Alias] | None = None) -> None:
        super().__init__("test:index:Group", name, None, None)
        k8s.core.v1.ConfigMap(
            "settings",
            metadata={"name": "settings", "namespace": "app"},
            data={"a": "b"},
            opts=pulumi.ResourceOptions(parent=self, aliases=aliases),
        )
        self.register_outputs({})


def _top_level() -> None:
    k8s.core.v1.ConfigMap(
        "settings", metadata={"name": "settings", "namespace": "app"}, data={"a": "b"}
    )


def _tree(program: Callable[[], None]) -> Rendered:
    run = run_program(program, stack="s", config={"kubernetes:enableConfigMapMutable": "true"})
    files = {path: yaml.safe_load(text) for path, text in render(run).items()}
    index = render_index(run)
    return Rendered(
        files,
        urns={f: r["urn"] for f, r in index["resources"].items()},
        aliases={f: tuple(r["aliases"]) for f, r in index["resources"].items()},
        providers=index["providers"],
    )


def test_a_resource_moved_into_a_component_is_deleted_and_created() -> None:
    diff = diff_stack("s", _tree(_top_level), _tree(lambda: _Component("group")))

    assert sorted(r.action for r in diff.resources) == ["create", "delete"]
    assert {r.file for r in diff.resources} == {"kubernetes/ConfigMap-settings.yaml"}
    (created,) = [r for r in diff.resources if r.action == "create"]
    assert [w for w in created.warnings if "AlreadyExists" in w and "alias" in w]
    assert "AlreadyExists" in format_text([diff], "b")


def test_an_alias_to_the_old_parent_keeps_it() -> None:
    aliased = _tree(lambda: _Component("group", [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))

    diff = diff_stack("s", _tree(_top_level), aliased)

    assert diff.resources == () and diff.unchanged == 1


def test_an_api_version_change_keeps_the_resource_through_the_sdk_aliases() -> None:
    def autoscaler(module: Any) -> Callable[[], None]:
        def program() -> None:
            module.HorizontalPodAutoscaler(
                "hpa",
                metadata={"name": "hpa", "namespace": "app"},
                spec={
                    "scale_target_ref": {
                        "api_version": "apps/v1",
                        "kind": "Deployment",
                        "name": "a",
                    },
                    "min_replicas": 1,
                    "max_replicas": 2,
                },
            )

        return program

    diff = diff_stack(
        "s", _tree(autoscaler(k8s.autoscaling.v1)), _tree(autoscaler(k8s.autoscaling.v2))
    )

    (resource,) = diff.resources
    assert resource.action == "update"
    assert ("apiVersion", "autoscaling/v1", "autoscaling/v2") in {
        (c.path, c.old, c.new) for c in resource.changes
    }


# Secrets that change show as changed, never their values --------------------------------------


def test_a_changed_secret_webhook_is_a_masked_change(as_json: str) -> None:
    secret = _resources(as_json, "staging")["kubernetes/Secret-monitoring-alertmanager-config.yaml"]

    assert secret["action"] == "replace"
    (change,) = secret["changes"]
    assert change["masked"] and change["old"] == change["new"] == "[secret]"


def test_a_changed_encrypted_value_is_a_change(tmp_path: Path) -> None:
    def tree(ciphertext: str) -> Rendered:
        stack = "production"
        config, secret_keys = stack_config(stack)
        data = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
        data["config"]["safeguard:apiKeys"] = {"secure": ciphertext}
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(data))
        config, secret_keys = stack_config(stack, root=tmp_path)
        run = run_program(
            lambda: _program_of(stack), stack=stack, config=config, secret_keys=secret_keys
        )
        files = render(run, fingerprints("00" * 16))
        return Rendered({p: yaml.safe_load(t) for p, t in files.items()})

    diff = diff_stack("production", tree("v1:AAAA"), tree("v1:BBBB"))

    (secret,) = [r for r in diff.resources if r.file == "kubernetes/Secret-app-secret.yaml"]
    assert secret.action == "replace"
    assert [c.path for c in secret.changes] == ["stringData.API_KEYS"]
    for text in _formats(diff):
        assert "AAAA" not in text and "BBBB" not in text


def test_without_fingerprints_secrets_only_mask() -> None:
    old = {"s.yaml": _manifest("ConfigMap", data={"k": "[secret 0123456789abcdef]"})}
    new = {"s.yaml": _manifest("ConfigMap", data={"k": "[secret]"})}

    assert diff_stack("s", old, new).resources == ()


def _program_of(stack: str) -> None:
    from infra.program import run
    from stacks import load_settings

    run(load_settings())


def test_plain_docker_env_stays_visible_beside_a_secret_and_a_literal_password_shows() -> None:
    # The shape the program now sends: the secret is a file of the container's secrets volume,
    # so `envs` holds no secret and the engine has no reason to wrap the list as one
    # (provider_plugin.go#annotateSecrets); every entry shows, a literal password included.
    def tree(env: dict[str, str]) -> Rendered:
        run = run_program(docker_service.program(env), stack="s", config={})
        (web,) = [r for r in run.resources if r.name == "web-container"]
        assert web.checked is not None and not is_secret(web.checked["envs"])
        return Rendered({p: yaml.safe_load(t) for p, t in render(run).items()})

    diff = diff_stack(
        "s", tree({"LOG_LEVEL": "debug"}), tree({"LOG_LEVEL": "info", "API_TOKEN": "abc123"})
    )

    (resource,) = diff.resources
    assert resource.name == "web-container"
    changed = {(c.old, c.new, c.masked) for c in resource.changes if c.path.startswith("envs")}
    assert ("LOG_LEVEL=debug", "LOG_LEVEL=info", False) in changed
    assert any(new == "API_TOKEN=abc123" and not masked for _, new, masked in changed), changed
    for text in _formats(diff):
        assert "API_TOKEN=abc123" in text and "hunter2" not in text
