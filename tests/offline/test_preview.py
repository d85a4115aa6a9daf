"""The gate as the engine runs a first preview: unknowns where the engine has them, outputs as
the providers return them, the Kubernetes provider's Check before Analyze, and secrets marked
the way the engine marks them. A probe pack (tests/support/probe_pack.py) shows what the pack
really receives; the real pack shows the verdicts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest

from infra.__main__ import main
from infra.offline import check
from infra.offline.analyzer import PolicyPackProcess
from infra.offline.check import check_program, subjects_of_run
from infra.offline.runtime import is_secret, run_program, unwrap
from infra.offline.wire import UNKNOWN
from tests.fixtures import docker_service
from tests.support.probe_pack import received, write_probe_pack

HEALTHCHECK = {"tests": ["CMD", "true"], "interval": "5s", "timeout": "2s", "retries": 3}


def _docker_program() -> None:
    image = docker.RemoteImage("web-image", name="nginx:1.27.3", keep_locally=True)
    password = random.RandomPassword("web-password", length=20)
    docker.Container(
        "web",
        name="web",
        image=image.image_id,
        user="101:101",
        envs=["LOG_LEVEL=info", pulumi.Output.concat("DB_PASSWORD=", password.result)],
        healthcheck=HEALTHCHECK,
    )


class _Box(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Box", name, None, None)
        self.size = pulumi.Output.from_input(3)
        self.register_outputs({"size": self.size, "label": "big"})


def _probe_run(tmp_path: Path, program: Any, *, preview: bool) -> tuple[dict, dict]:
    """What the probe pack got in Analyze and AnalyzeStack, by resource name."""
    run = run_program(program, stack="fixture", config={}, preview=preview)
    subjects = [s.resource for s in subjects_of_run(run, "fixture")]
    with PolicyPackProcess(write_probe_pack(tmp_path / "probe"), dry_run=preview) as pack:
        pack.configure(None)
        analyzed, stack = pack.analyze_all(subjects)
    analyze_messages = [d.message for _, found in analyzed for d in found]
    return received(analyze_messages, "Analyze"), received(
        [d.message for d in stack], "AnalyzeStack"
    )


# --- 1. a preview has unknowns, and the pack knows it is one ----------------------------------


def test_a_preview_leaves_provider_computed_values_unknown(tmp_path: Path) -> None:
    analyzed, _ = _probe_run(tmp_path, _docker_program, preview=True)

    web = analyzed["web"]
    assert web["props"]["image"] == UNKNOWN
    assert web["props"]["envs"][0] == "LOG_LEVEL=info" and web["props"]["envs"][1] == UNKNOWN
    assert web["process"]["env"]["PULUMI_DRY_RUN"] == "true" and web["process"]["dry_run"]


def test_the_update_knows_every_value(tmp_path: Path) -> None:
    analyzed, _ = _probe_run(tmp_path, _docker_program, preview=False)

    web = analyzed["web"]
    assert web["props"]["image"].startswith("sha256:")
    assert web["props"]["envs"][1].startswith("DB_PASSWORD=") and UNKNOWN not in json.dumps(web)
    assert web["process"]["env"]["PULUMI_DRY_RUN"] == "false"


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with check.policy_pack("fixture") as process:
        yield process


def test_unknown_value_notes_are_reported_apart_from_violations(pack: PolicyPackProcess) -> None:
    preview = check_program(_docker_program, stack="fixture", pack=pack)
    update = check_program(_docker_program, stack="fixture", pack=pack, preview=False)

    notes = {(f.name, f.policy) for f in preview.unknowns}
    assert ("web", "image-tag-pinned") in notes
    assert all(f.level == "advisory" and "during preview" in f.message for f in preview.unknowns)
    assert not any(f.unknown for f in preview.violations)
    assert update.unknowns == ()
    text = preview.to_text()
    assert "Not known during preview (checked again by `pulumi up`):" in text
    assert preview.to_json()["summary"]["unknowns"] == len(preview.unknowns)


def test_cli_checks_as_a_preview_unless_told_otherwise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--stack", "dev", "--json"]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert main(["check", "--stack", "dev", "--json", "--no-preview"]) == 0
    update = json.loads(capsys.readouterr().out)

    # Dev's images are pulled by RemoteImage: their ids are unknown until the update.
    assert ("app-container", "image-tag-pinned") not in {
        (f["name"], f["policy"]) for f in preview["violations"]
    }
    assert {f["policy"] for f in preview["unknowns"]} >= {"image-tag-pinned"}
    assert update["unknowns"] == [] and update["summary"]["mandatory"] == 0


# --- 2. AnalyzeStack gets outputs ---------------------------------------------------------


def test_analyze_stack_gets_outputs_as_the_providers_return_them(tmp_path: Path) -> None:
    def program() -> None:
        _docker_program()
        _Box("box")
        pulumi.export("answer", 42)

    analyzed, stack = _probe_run(tmp_path, program, preview=True)
    _, known = _probe_run(tmp_path / "update", program, preview=False)

    # Inputs for Analyze, the provider's outputs for AnalyzeStack.
    assert "repoDigest" not in analyzed["web-image"]["props"]
    assert stack["web-image"]["props"]["repoDigest"] == UNKNOWN
    assert known["web-image"]["props"]["repoDigest"].startswith("nginx@sha256:")
    assert stack["web-password"]["props"]["result"] == UNKNOWN
    assert stack["web-password"]["props"]["special"] is True  # the provider's default
    assert stack["web"]["props"]["exitCode"] == UNKNOWN
    assert stack["web"]["props"]["mustRun"] is True  # a Terraform default, filled by Check
    assert stack["box"]["props"] == {"size": 3, "label": "big"}
    assert stack["safeguard-fixture"]["props"] == {"answer": 42}


# --- 3. the Kubernetes provider's Check --------------------------------------------------


def _kubernetes_program() -> None:
    labels = {"app.kubernetes.io/name": "api"}
    deployment = k8s.apps.v1.Deployment(
        "api",
        spec={
            "selector": {"match_labels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "api", "image": "ghcr.io/x/api:1.0.0"}]},
            },
        },
    )
    k8s.autoscaling.v2.HorizontalPodAutoscaler(
        "api-hpa",
        spec={
            "scale_target_ref": {
                "api_version": "apps/v1",
                "kind": "Deployment",
                "name": deployment.metadata.name,
            },
            "min_replicas": 2,
            "max_replicas": 4,
        },
    )
    k8s.core.v1.Secret("token", string_data={"TOKEN": "s3cr3t"})


def _kubeconfig(path: Path, namespace: str | None) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace is not None:
        context["namespace"] = namespace
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "ctx",
                "contexts": [{"name": "ctx", "context": context}],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    return path


@pytest.fixture
def no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _namespace_findings(pack: PolicyPackProcess, config: dict[str, str]) -> dict[str, str]:
    report = check_program(_kubernetes_program, stack="fixture", pack=pack, config=config)
    return {f.name: f.message for f in report.violations if f.policy == "k8s-no-default-namespace"}


@pytest.mark.usefixtures("no_kubeconfig")
def test_without_a_kubeconfig_the_namespace_stays_unset(pack: PolicyPackProcess) -> None:
    found = _namespace_findings(pack, {})

    assert (
        set(found) == {"api", "api-hpa", "token"}
        and "metadata.namespace is not set" in found["api"]
    )


@pytest.mark.usefixtures("no_kubeconfig")
@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("team", None), (None, 'metadata.namespace is "default"')],
    ids=["context-namespace", "context-without-namespace"],
)
def test_check_gives_the_kubeconfig_context_namespace(
    pack: PolicyPackProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    namespace: str | None,
    expected: str | None,
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "config", namespace)))

    found = _namespace_findings(pack, {})

    if expected is None:
        assert found == {}
    else:
        assert expected in found["api"]


@pytest.mark.usefixtures("no_kubeconfig")
def test_provider_namespace_config_wins(pack: PolicyPackProcess) -> None:
    assert _namespace_findings(pack, {"kubernetes:namespace": "ops"}) == {}


@pytest.mark.usefixtures("no_kubeconfig")
def test_check_autonames_and_encodes_secret_data(tmp_path: Path) -> None:
    analyzed, _ = _probe_run(tmp_path, _kubernetes_program, preview=True)

    metadata = analyzed["api"]["props"]["metadata"]
    assert metadata["name"].startswith("api-") and len(metadata["name"]) == len("api-") + 8
    assert metadata["annotations"] == {"pulumi.com/autonamed": "true"}
    # The HPA got the autoname through the Deployment's output, as on a real preview.
    assert analyzed["api-hpa"]["props"]["spec"]["scaleTargetRef"]["name"] == metadata["name"]
    token = analyzed["token"]["props"]
    assert "stringData" not in token
    assert base64.b64decode(token["data"]["TOKEN"]) == b"s3cr3t"


@pytest.mark.usefixtures("no_kubeconfig")
def test_autoscaler_matches_its_autonamed_deployment(pack: PolicyPackProcess) -> None:
    report = check_program(
        _kubernetes_program, stack="fixture", pack=pack, config={"kubernetes:namespace": "ops"}
    )

    # Two replicas through the HPA, and no PodDisruptionBudget: only found when the HPA's
    # scaleTargetRef names the Deployment as Check named it.
    pdb = [f for f in report.violations if f.policy == "k8s-pdb-coverage"]
    assert [f.name for f in pdb] == ["api"]
    assert "Deployment" in pdb[0].type


def test_unknown_secret_data_is_left_for_the_update() -> None:
    def program() -> None:
        password = random.RandomPassword("pw", length=16)
        k8s.core.v1.Secret("db", metadata={"namespace": "x"}, string_data={"P": password.result})

    preview = run_program(program, stack="fixture", config={}, preview=True)
    update = run_program(program, stack="fixture", config={}, preview=False)

    (secret,) = preview.of_type("core/v1:Secret")
    assert is_secret(secret.checked["stringData"]) and "data" not in secret.checked
    (known,) = update.of_type("core/v1:Secret")
    assert "stringData" not in known.checked and is_secret(known.checked["data"])


# --- 4. secrets in lists --------------------------------------------------------------------


def test_one_secret_entry_makes_the_whole_env_list_secret() -> None:
    def program() -> None:
        docker.Container("c", name="c", image="x:1", envs=["A=1", pulumi.Output.secret("B=2")])
        k8s.core.v1.Pod(
            "p",
            metadata={"namespace": "x"},
            spec={
                "containers": [
                    {"name": "c", "env": [{"name": "T", "value": pulumi.Output.secret("t")}]}
                ]
            },
        )

    run = run_program(program, stack="fixture", config={}, preview=False)
    container = next(r for r in run.resources if r.name == "c")
    pod = next(r for r in run.resources if r.name == "p")

    # The SDK sends the one entry secret; the engine keeps the list secret as a whole.
    assert not is_secret(container.inputs["envs"]) and is_secret(container.inputs["envs"][1])
    assert is_secret(container.checked["envs"]) and unwrap(container.checked["envs"]) == [
        "A=1",
        "B=2",
    ]
    assert is_secret(container.outputs["envs"])
    assert is_secret(pod.checked["spec"]["containers"]) and not is_secret(pod.checked["spec"])


def test_a_literal_password_in_plain_docker_env_is_refused(pack: PolicyPackProcess) -> None:
    # The Docker back end delivers the service's real secret as a file, so its `envs` holds no
    # secret, the engine does not wrap it as one, and docker-no-literal-secrets sees each entry
    # as plain: a literal beside the file-delivered password is no longer hidden.
    program = docker_service.program({"LOG_LEVEL": "info", "API_TOKEN": "abc123"})
    report = check_program(
        program, stack="fixture", pack=pack, pack_config=check.CONFIG_DIR / "production.json"
    )

    (found,) = [f for f in report.violations if f.policy == "docker-no-literal-secrets"]
    assert (found.name, found.level) == ("web-container", "mandatory")
    assert "API_TOKEN looks secret but has a literal value (envs[0])" in found.message
    assert "DB_PASSWORD" not in found.message
    assert report.exit_code == 1
    clean = check_program(
        docker_service.program({"LOG_LEVEL": "info"}), stack="fixture", pack=pack,
        pack_config=check.CONFIG_DIR / "production.json",
    )  # fmt: skip
    assert [f for f in clean.violations if f.policy == "docker-no-literal-secrets"] == []
