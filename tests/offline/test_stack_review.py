"""What `python -m infra check` tells a reviewer about a stack beyond the pack's findings: a new
stack is refused until it has its pack config, and warnings (a namespace two stacks share,
production without alert webhooks or API keys) are listed in the text and JSON reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.offline.cli import main
from tests.support.cli import run_check
from tests.support.project import copy_checkout

WEBHOOKS_AND_KEYS = (
    "safeguard:alertWebhookCritical is not set: critical alerts reach no one",
    "safeguard:alertWebhookWarning is not set: warning alerts reach no one",
    "safeguard:apiKeys is not set: anyone who reaches the API can POST and DELETE",
    "safeguard:backupAccessKeyId is not set: every backup fails after its local dump, uploading "
    "nothing, until it is",
    "safeguard:backupSecretAccessKey is not set: every backup fails after its local dump, "
    "uploading nothing, until it is",
)


def _check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", "check", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_copied_stack_is_refused_without_its_pack_config_then_warned_about(
    tmp_path: Path,
) -> None:
    root = copy_checkout(tmp_path)
    shutil.copy2(root / "Pulumi.staging.yaml", root / "Pulumi.qa.yaml")

    refused = _check(root, "--stack", "qa")
    assert refused.returncode == 2 and refused.stdout == ""
    assert "policies/config/qa.json is missing" in refused.stderr
    assert "Traceback" not in refused.stderr

    shutil.copy2(root / "policies/config/staging.json", root / "policies/config/qa.json")
    checked = _check(root, "--stack", "qa", "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["config"] == "policies/config/qa.json"
    # The copy names staging's existing TLS Secret, which the check cannot see.
    assert {w["kind"] for w in report["warnings"]} == {"program", "read"}
    shared = [
        w["message"] for w in report["warnings"] if w["message"].startswith("safeguard:namespace:")
    ]
    assert shared == [
        "safeguard:namespace: stack 'staging' (Pulumi.staging.yaml) deploys into "
        "'safeguard-staging' too; on one cluster the two stacks would replace each other's "
        "resources: give this stack a namespace of its own"
    ]


def test_manifests_checked_for_a_stack_without_pack_config_are_refused(tmp_path: Path) -> None:
    root = copy_checkout(tmp_path / "project")
    shutil.copy2(root / "Pulumi.staging.yaml", root / "Pulumi.qa.yaml")
    manifests = root / "tests/fixtures/manifests"

    result = _check(root, "--manifests", str(manifests), "--stack", "qa")
    assert result.returncode == 2
    assert "stack 'qa' has no policy pack config: create policies/config/qa.json" in result.stderr


def test_production_warnings_are_in_the_text_and_json_reports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text, _ = run_check(capsys, "--stack", "production")
    assert code == 0
    listed = text.split("\nWarnings:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(" (pulumi config", 1)[0] for line in listed] == [
        f"  - {warning}" for warning in WEBHOOKS_AND_KEYS
    ]
    assert text.splitlines()[-1].startswith("PASSED: ")

    code, out, _ = run_check(capsys, "--stack", "production", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert [
        (w["kind"], w["message"].split(" (pulumi config", 1)[0]) for w in report["warnings"]
    ] == [("program", warning) for warning in WEBHOOKS_AND_KEYS]
    assert report["summary"]["warnings"] == 5 and report["summary"]["passed"] is True

    code, markdown, _ = run_check(capsys, "--stack", "production", "--format", "markdown")
    assert code == 0
    assert "#### 5 warnings" in markdown
    for warning in WEBHOOKS_AND_KEYS:
        assert warning.split(":", 1)[1].split(":", 1)[0] in markdown


def test_a_secret_the_stack_reads_must_exist_before_pulumi_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_check(capsys, "--stack", "staging", "--format", "json")
    assert code == 0
    report = json.loads(out)
    reads = [w["message"] for w in report["warnings"] if w["kind"] == "read"]
    assert reads == [
        "kubernetes:core/v1:Secret 'safeguard-staging/safeguard-staging-tls' is read from the "
        "cluster, not created (a `get`, urn:pulumi:staging::safeguard::kubernetes:core/v1:"
        "Secret::nginx-tls); this check sees no cluster: it must exist before `pulumi up`, whose "
        "preview fails at once without it (\"resource 'safeguard-staging/safeguard-staging-tls' "
        'does not exist")'
    ]
    code, text, _ = run_check(capsys, "--stack", "staging")
    assert code == 0
    assert f"  - {reads[0]}" in text.split("\nWarnings:\n", 1)[1].splitlines()


def test_a_stack_with_nothing_to_warn_about_has_no_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_check(capsys, "--stack", "dev", "--json")
    assert code == 0 and json.loads(out)["warnings"] == []


def test_render_shows_the_warnings_on_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["render", "--stack", "production", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert [line.split(" (pulumi config", 1)[0] for line in captured.err.splitlines()] == [
        f"warning: {warning}" for warning in WEBHOOKS_AND_KEYS
    ]
    assert captured.out.startswith("rendered ")
