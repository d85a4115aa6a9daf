"""The GitHub workflows users of the project run: valid against GitHub's workflow schema, every
stack covered, actions pinned, least privilege, production gated and policed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.offline.runtime import PROJECT_ROOT, stack_config
from tests.support.mocks import build_stack, containers, pod_specs, unwrap
from tests.support.workflows import run_step

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
PR = WORKFLOWS / "pr.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
STACKS = sorted(p.name.split(".")[1] for p in PROJECT_ROOT.glob("Pulumi.*.yaml"))
PINNED = re.compile(
    r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40} # v\d+(\.\d+)*$"
)
ALLOWED_WRITES = {"pull-requests", "id-token"}
IMAGE_ARCHIVE = "${{ runner.temp }}/app-image.tar"


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _jobs(path: Path) -> dict[str, dict[str, Any]]:
    return _load(path)["jobs"]


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def _pulumi_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's pulumi/actions steps that run a command (without one it installs the CLI)."""
    return [
        s
        for s in _steps(job)
        if str(s.get("uses", "")).startswith("pulumi/actions@") and s.get("with", {}).get("command")
    ]


def _uses(job: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [s for s in _steps(job) if str(s.get("uses", "")).startswith(f"{action}@")]
    return step


def _commands(job: dict[str, Any]) -> Iterator[list[str]]:
    """Every shell command of the job's `run` steps, split into words (continuations joined)."""
    for step in _steps(job):
        for line in step.get("run", "").replace("\\\n", " ").splitlines():
            if line.strip() and not line.strip().startswith("#"):
                yield shlex.split(line, comments=True)


def _check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_workflows_match_the_github_workflow_schema() -> None:
    result = _check_jsonschema(PR, DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = _load(DEPLOY)
    broken["jobs"]["production"]["environment"] = {"nmae": "production"}
    (tmp_path / "deploy.yml").write_text(yaml.safe_dump(broken))
    result = _check_jsonschema(tmp_path / "deploy.yml")
    assert result.returncode == 1 and "nmae" in result.stdout


def test_every_stack_is_checked_and_diffed_in_pull_requests() -> None:
    assert STACKS == ["dev", "production", "staging"]
    job = _jobs(PR)["stack"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == STACKS
    commands = list(_commands(job))
    check = next(c for c in commands if c[:4] == ["python", "-m", "infra", "check"])
    assert check[4:8] == ["--stack", "$STACK", "--format", "markdown"]
    diff = next(c for c in commands if c[:4] == ["python", "-m", "infra", "diff"])
    assert diff[diff.index("--base") + 1] == "origin/$BASE_REF"
    assert diff[diff.index("--format") + 1] == "markdown"
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    env = next(s["env"] for s in _steps(job) if "infra diff" in s.get("run", ""))
    assert env == {"STACK": "${{ matrix.stack }}", "BASE_REF": "${{ github.base_ref }}"}


def test_every_stack_is_deployed_in_order_with_its_policy_pack() -> None:
    jobs = _jobs(DEPLOY)
    deployed = {}
    for name, job in jobs.items():
        if name == "image":
            continue
        (step,) = _pulumi_steps(job)
        stack = step["with"]["stack-name"]
        deployed[stack] = name
        assert step["with"]["command"] == "up"
        assert step["with"]["policyPacks"] == "policies"
        config = step["with"]["policyPackConfigs"]
        assert config == f"policies/config/{stack}.json" and (PROJECT_ROOT / config).is_file()
        assert ["python", "-m", "infra", "check", "--stack", stack] in list(_commands(job))
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
    assert sorted(deployed) == STACKS
    assert jobs[deployed["dev"]]["needs"] == "image"
    assert jobs[deployed["staging"]]["needs"] == ["image", deployed["dev"]]
    assert jobs[deployed["production"]]["needs"] == ["image", deployed["staging"]]


def test_production_waits_for_the_production_environment() -> None:
    production = _jobs(DEPLOY)["production"]
    environment = production["environment"]
    name = environment["name"] if isinstance(environment, dict) else environment
    assert name == "production"
    triggers = _load(DEPLOY).get("on", _load(DEPLOY).get(True))
    assert triggers["push"] == {"branches": ["main"]}


def test_lint_and_tests_run_with_the_servers_the_ci_script_installs() -> None:
    job = _jobs(PR)["lint-and-test"]
    commands = list(_commands(job))
    installed = {w for c in commands if c[:3] == ["sudo", "apt-get", "install"] for w in c[3:]}
    ci_script = (PROJECT_ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    ci_line = next(line for line in ci_script.splitlines() if "apt-get install" in line)
    wanted = {w for w in shlex.split(ci_line) if re.fullmatch(r"[a-z][a-z0-9.+-]+", w)}
    wanted -= {"apt-get", "install"}
    assert {"postgresql", "redis-server", "nginx", "prometheus"} <= wanted <= installed
    for command in (["python", "-m", "ruff", "check", "."], ["python", "-m", "pytest"]):
        assert command in commands


def test_the_diff_is_one_comment_found_by_its_marker() -> None:
    job = _jobs(PR)["diff-comment"]
    script = next(s["with"]["script"] for s in _steps(job) if "github-script" in s.get("uses", ""))
    assert 'const marker = "<!-- safeguard-diff -->";' in script
    assert "updateComment" in script and "createComment" in script
    assert "c.body.includes(marker)" in script
    assert job["permissions"] == {"pull-requests": "write"}


def test_previews_need_credentials_and_comment_for_dev_and_staging() -> None:
    job = _jobs(PR)["preview"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == ["dev", "staging"]
    assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    (step,) = _pulumi_steps(job)
    assert step["if"] == "env.PULUMI_ACCESS_TOKEN != ''"
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True and step["with"]["diff"] is True
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    for other in _steps(job):
        if other is not step and "uses" in other:
            assert "env.PULUMI_ACCESS_TOKEN != ''" in other["if"], other["uses"]


@pytest.mark.parametrize("path", [PR, DEPLOY], ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert len(lines) >= 5
    for line in lines:
        assert PINNED.match(line), f"{path.name}: not pinned to a full SHA: {line.strip()}"


@pytest.mark.parametrize("path", [PR, DEPLOY], ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        assert isinstance(permissions, dict), f"{name}: {permissions}"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        if (path, name) == (DEPLOY, "image"):
            # The one job that pushes the app image to GHCR with GITHUB_TOKEN.
            assert writes == {"packages"} and permissions["contents"] == "read"
            assert [s["id"] for s in _steps(job) if "skopeo copy" in s.get("run", "")] == ["push"]
            continue
        assert writes <= ALLOWED_WRITES, f"{name}: {writes}"
        if "pull-requests" in writes:
            comments = any(
                s.get("with", {}).get("comment-on-pr") or "createComment" in str(s.get("with"))
                for s in _steps(job)
            )
            assert comments, f"{name} may write to pull requests but never comments"
    if path == DEPLOY:
        assert [n for n, job in workflow["jobs"].items() if "permissions" in job] == ["image"]


def _step(job: str, name: str) -> dict[str, Any]:
    return next(s for s in _steps(_jobs(PR)[job]) if s.get("name") == name)


def test_a_stack_whose_check_fails_still_gets_its_report_and_fails_the_job(
    tmp_path: Path,
) -> None:
    """The check step records the verdict and goes on; the report is written; the verdict step
    at the end fails the job with the check's exit code."""
    check = _step("stack", "Policy check")
    verdict = _step("stack", "Policy check verdict")

    ran, outputs, summary = run_step(
        check, tmp_path, {"STACK": "nope", "PYTHONPATH": str(PROJECT_ROOT)}
    )
    failed, _, _ = run_step(verdict, tmp_path, {"STACK": "nope", "STATUS": "2"})

    assert ran.returncode == 0, ran.stderr
    assert outputs == {"status": "2"}
    report = (tmp_path / "report" / "nope-1-check.md").read_text()
    assert report.startswith("### Policy check of stack `nope`: :x: **could not run**")
    assert "no stack 'nope'" in report
    assert report in summary
    assert verdict["if"] == "steps.check.outputs.status != '0'"
    assert failed.returncode == 2 and "exited 2" in failed.stdout
    upload = next(s for s in _steps(_jobs(PR)["stack"]) if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "${{ !cancelled() }}" and upload["with"]["path"] == "report/"


_COMMENT_HARNESS = """
const fs = require("fs");
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const calls = [];
const github = {
  paginate: async () => [],
  rest: { issues: {
    listComments: () => {},
    createComment: async (args) => calls.push(args),
    updateComment: async (args) => calls.push(args),
  } },
};
const context = {
  sha: "0123456789abcdef",
  repo: { owner: "o", repo: "r" },
  payload: { pull_request: { number: 7 } },
};
const script = fs.readFileSync(process.argv[2], "utf8");
new AsyncFunction("github", "context", "require", "process", script)(
  github, context, require, process,
).then(() => console.log(JSON.stringify(calls)));
"""


def test_the_comment_shows_each_stacks_check_and_diff_and_names_a_missing_one(
    tmp_path: Path,
) -> None:
    job = _jobs(PR)["diff-comment"]
    step = next(s for s in _steps(job) if "github-script" in s.get("uses", ""))
    assert step["env"]["STACKS"].split() == _jobs(PR)["stack"]["strategy"]["matrix"]["stack"]
    download = next(s for s in _steps(job) if "download-artifact" in s.get("uses", ""))
    assert download["with"] == {"pattern": "report-*", "path": "report", "merge-multiple": True}
    failing = "### Policy check of stack `dev`: :x: **failed**\n\n#### `k8s-no-root` (mandatory)"

    body = _comment(
        tmp_path,
        {
            "dev-1-check.md": failing + "\n",
            "dev-2-diff.md": "### Stack `dev` against `origin/main`: no changes\n",
            "staging-1-check.md": "### Policy check of stack `staging`: passed\n",
        },
    )

    assert body.startswith("<!-- safeguard-diff -->")
    assert body.index(failing) < body.index("### Stack `dev` against") < body.index("`staging`")
    assert "### Stack `production`: no report; its job failed before writing one" in body


def _step_index(job: dict[str, Any], match: str) -> int:
    return next(
        i
        for i, step in enumerate(_steps(job))
        if match in step.get("run", "") + step.get("uses", "")
    )


def test_the_image_is_built_once_into_one_archive_that_is_scanned_before_it_is_pushed() -> None:
    job = _jobs(DEPLOY)["image"]
    build = _uses(job, "docker/build-push-action")["with"]
    sbom = _uses(job, "anchore/sbom-action")["with"]
    scan = _uses(job, "anchore/scan-action")["with"]

    assert (build["context"], build["file"]) == (".", "app/Dockerfile")
    assert (PROJECT_ROOT / build["file"]).is_file()
    assert build["outputs"] == f"type=oci,dest={IMAGE_ARCHIVE}" and "push" not in build
    assert build["cache-from"] == "type=gha,scope=app-image"
    assert build["cache-to"] == "type=gha,scope=app-image,mode=max"
    assert build["provenance"] is False and build["sbom"] is False
    assert sbom["image"] == scan["image"] == f"oci-archive:{IMAGE_ARCHIVE}"
    assert sbom["format"] == "spdx-json"
    # Fails on fixable HIGH or CRITICAL findings, and only on those.
    assert scan["fail-build"] is True and scan["only-fixed"] is True
    assert scan["severity-cutoff"] == "high"
    push = next(s for s in _steps(job) if s.get("id") == "push")
    assert push["env"] == {"ARCHIVE": IMAGE_ARCHIVE}
    order = [_step_index(job, m) for m in ("build-push-action", "sbom-action", "scan-action")]
    assert order == sorted(order) and order[-1] < _steps(job).index(push)
    assert "continue-on-error" not in scan and all(
        "continue-on-error" not in step for step in _steps(job)
    )
    assert job["outputs"]["image"] == (
        "${{ steps.push.outputs.image || steps.rollback.outputs.image }}"
    )


def test_the_registry_is_ghcr_unless_configured() -> None:
    env = _load(DEPLOY)["env"]

    assert env["IMAGE_REGISTRY"] == "${{ vars.IMAGE_REGISTRY || 'ghcr.io' }}"
    assert env["IMAGE_REPOSITORY"] == (
        "${{ vars.IMAGE_REPOSITORY || format('{0}/safeguard-app', github.repository) }}"
    )
    job = _jobs(DEPLOY)["image"]
    assert job["env"]["REGISTRY_PASSWORD"] == (
        "${{ vars.IMAGE_REGISTRY && secrets.REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}"
    )
    login = _steps(job)[0]
    assert "skopeo login" in login["run"] and "--password-stdin" in login["run"]


def test_every_stack_deploys_the_image_job_s_digest() -> None:
    for stack in STACKS:
        job = _jobs(DEPLOY)[stack]
        commands = list(_commands(job))
        set_image = ["pulumi", "config", "set", "--stack", stack, "--path", "safeguard:app.image"]
        (image,) = [c for c in commands if c[:7] == set_image]
        builds = [c for c in commands if "safeguard:app.build" in c]

        assert image[7:] == ["$IMAGE"]
        assert job["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
        # dev builds its image from the working tree by default; the pipeline deploys the release.
        assert builds == (
            [[*set_image[:6], "safeguard:app.build", "false"]] if stack == "dev" else []
        )
        first_set = _step_index(job, "pulumi config set")
        (up,) = _pulumi_steps(job)
        assert first_set < _step_index(job, "infra check") < _steps(job).index(up)
        installs = [
            i for i, step in enumerate(_steps(job))
            if str(step.get("uses", "")).startswith("pulumi/actions@") and "with" not in step
        ]  # fmt: skip
        assert installs and installs[0] < first_set, "the CLI is installed before it is used"
        assert up["with"]["message"] == "${{ github.sha }} ${{ needs.image.outputs.image }}"


RELEASED = "ghcr.io/example/safeguard-app@sha256:" + "ab" * 32


def _config_set(config: dict[str, str], command: list[str], value: str) -> None:
    """`pulumi config set --path <key.field> <value>` on the engine-shaped config: with --path a
    value of true or false is stored as a boolean (pulumi/pulumi sdk/go/common/resource/config
    map.go, adjustObjectValue)."""
    key, field = command[command.index("--path") + 1].split(".")
    section = json.loads(config.get(key, "{}"))
    section[field] = {"true": True, "false": False}.get(value, value)
    config[key] = json.dumps(section)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_the_digest_the_workflow_sets(stack: str) -> None:
    config, _ = stack_config(stack)
    for command in _commands(_jobs(DEPLOY)[stack]):
        if command[:3] == ["pulumi", "config", "set"]:
            _config_set(config, command, RELEASED if command[-1] == "$IMAGE" else command[-1])
    run = build_stack(stack, app=config["safeguard:app"])

    if stack == "dev":
        pulled = [unwrap(r.inputs)["name"] for r in run.of_type("index/remoteImage:RemoteImage")]
        assert RELEASED in pulled and not run.of_type("index/image:Image")
    else:
        (app,) = [p for w, p in pod_specs(run) if w.inputs["metadata"]["name"] == "app"]
        assert {c["image"] for c, _ in containers(app)} == {RELEASED}


def test_a_dispatch_with_an_image_redeploys_it_instead_of_building() -> None:
    triggers = _load(DEPLOY).get("on", _load(DEPLOY).get(True))
    image_input = triggers["workflow_dispatch"]["inputs"]["image"]
    job = _jobs(DEPLOY)["image"]
    rollback = next(s for s in _steps(job) if s.get("id") == "rollback")
    building = [s for s in _steps(job) if s is not rollback and s.get("name") != "Registry login"]

    assert image_input["type"] == "string" and image_input["required"] is False
    assert job["env"]["ROLLBACK_IMAGE"] == "${{ inputs.image || '' }}"
    assert rollback["if"] == "env.ROLLBACK_IMAGE != ''"
    assert len(building) >= 6 and {s.get("if") for s in building} == {"env.ROLLBACK_IMAGE == ''"}
    # The deploy jobs take the job's output either way, so the rollback goes through the same
    # checks, order and approval as a release.
    for stack in STACKS:
        assert _jobs(DEPLOY)[stack]["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _image_report(repo: Path) -> str:
    step = next(s for s in _steps(_jobs(PR)["image"]) if s.get("name") == "Did the image change")
    done, _, summary = run_step(step, repo, {"BASE_REF": "main", "IMAGE_ID": "sha256:" + "c" * 64})
    assert done.returncode == 0, done.stderr
    report = (repo / "report" / "image.md").read_text()
    assert report in summary
    return report


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    """A repository whose `origin/main` holds the app's build context as it is here."""
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    for name in ("Dockerfile", "requirements.lock", "main.py"):
        (repo / "app" / name).write_bytes((PROJECT_ROOT / "app" / name).read_bytes())
    (repo / ".dockerignore").write_bytes((PROJECT_ROOT / ".dockerignore").read_bytes())
    (repo / "README.md").write_text("safeguard\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    return repo


def test_the_comment_says_the_image_is_unchanged_when_nothing_it_is_built_from_is(
    pull_request: Path,
) -> None:
    (pull_request / "README.md").write_text("safeguard, documented\n")
    _git(pull_request, "commit", "-qam", "docs only")

    report = _image_report(pull_request)

    assert report.startswith("### App image: unchanged\n")
    assert "Built, not pushed: `sha256:" + "c" * 64 + "`." in report


def test_the_comment_names_what_changes_the_image_its_base_and_its_pins(
    pull_request: Path,
) -> None:
    lock = pull_request / "app" / "requirements.lock"
    lock.write_text(lock.read_text().replace("\nalembic==1.20.1 \\", "\nalembic==1.20.2 \\"))
    dockerfile = pull_request / "app" / "Dockerfile"
    old_base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text()).group(1)  # type: ignore[union-attr]
    new_base = old_base.split("@")[0] + "@sha256:" + "d" * 64
    dockerfile.write_text(dockerfile.read_text().replace(old_base, new_base))
    (pull_request / "app" / "main.py").write_text("changed\n")
    _git(pull_request, "commit", "-qam", "bump")

    report = _image_report(pull_request)

    assert report.startswith("### App image: changed\n")
    assert "M\tapp/Dockerfile\nM\tapp/main.py\nM\tapp/requirements.lock\n" in report
    assert f"-ARG PYTHON_IMAGE={old_base}\n+ARG PYTHON_IMAGE={new_base}\n" in report
    assert "< alembic==1.20.1\n> alembic==1.20.2\n" in report
    assert "README" not in report


def test_pull_requests_build_the_image_as_the_deploy_does_without_pushing_it() -> None:
    job = _jobs(PR)["image"]
    build = _uses(job, "docker/build-push-action")["with"]
    deploy_build = _uses(_jobs(DEPLOY)["image"], "docker/build-push-action")["with"]
    upload = _uses(job, "actions/upload-artifact")["with"]
    comment = _jobs(PR)["diff-comment"]
    download = _uses(comment, "actions/download-artifact")["with"]

    assert build["push"] is False and "outputs" not in build
    for same in ("context", "file", "cache-from", "provenance", "sbom"):
        assert build[same] == deploy_build[same], same
    assert "cache-to" not in build, "pull requests read the cache main writes"
    assert "permissions" not in job and not [s for s in _steps(job) if "login" in str(s)]
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    assert "image" in comment["needs"]
    assert re.fullmatch(download["pattern"].replace("*", ".*"), upload["name"])


def _comment(tmp_path: Path, files: dict[str, str]) -> str:
    """The body the comment script posts for these report files (the harness above)."""
    job = _jobs(PR)["diff-comment"]
    step = next(s for s in _steps(job) if "github-script" in s.get("uses", ""))
    (tmp_path / "report").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / "report" / name).write_text(text)
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "harness.js").write_text(_COMMENT_HARNESS)
    done = subprocess.run(
        ["node", "harness.js", "script.js"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "STACKS": step["env"]["STACKS"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (call,) = json.loads(done.stdout)
    assert call["issue_number"] == 7
    return call["body"]


def test_the_comment_opens_with_the_app_image_s_section(tmp_path: Path) -> None:
    image = "### App image: changed\n\nWhat it is built from differs from `main`:\n"
    stacks = {f"{s}-1-check.md": f"### Policy check of stack `{s}`: passed\n" for s in STACKS}

    with_image = _comment(tmp_path / "with", {"image.md": image, **stacks})
    without = _comment(tmp_path / "without", stacks)

    assert with_image.index(image) < with_image.index("### Policy check of stack `dev`")
    assert without.index("### App image: no report; its job failed before writing one") < (
        without.index("### Policy check of stack `dev`")
    )
