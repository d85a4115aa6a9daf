"""renovate.json: valid, and covering what the issue asks to keep current: the app's base image
and lock, the workflows' pinned actions, and every third-party image a stack deploys."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.offline.runtime import PROJECT_ROOT
from tests.support.mocks import STACKS, build_stack, containers, pod_specs, unwrap

RENOVATE = PROJECT_ROOT / "renovate.json"


def _config() -> dict[str, Any]:
    return json.loads(RENOVATE.read_text())


def _js_pattern(pattern: str) -> re.Pattern[str]:
    """A Renovate pattern (`/regex/` or a JS regex string) as Python's re: only the named-group
    spelling differs in what renovate.json uses."""
    body = pattern[1:-1] if pattern.startswith("/") and pattern.endswith("/") else pattern
    return re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", body))


def _files(patterns: list[str]) -> list[Path]:
    compiled = [_js_pattern(p) for p in patterns]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [PROJECT_ROOT / f for f in tracked if any(p.search(f) for p in compiled)]


def _custom_images(manager: dict[str, Any]) -> list[str]:
    """depName:currentValue[@currentDigest] of every match of one regex manager."""
    assert manager["customType"] == "regex" and manager["datasourceTemplate"] == "docker"
    found = []
    for path in _files(manager["managerFilePatterns"]):
        for pattern in manager["matchStrings"]:
            for match in _js_pattern(pattern).finditer(path.read_text()):
                digest = match.group("currentDigest")
                value = f"{match.group('depName')}:{match.group('currentValue')}"
                found.append(value + (f"@{digest}" if digest else ""))
    return found


def _managers() -> dict[str, dict[str, Any]]:
    """The regex managers by the one file each reads."""
    return {
        str(path.relative_to(PROJECT_ROOT)): manager
        for manager in _config()["customManagers"]
        for path in _files(manager["managerFilePatterns"])
    }


def _deployed_images(stack: str) -> set[str]:
    """Every image a stack runs but the app's own (built from app/Dockerfile, released by
    digest): the Kubernetes pods' and Docker's pulled images."""
    run = build_stack(stack)
    images = {
        c["image"]
        for workload, pod in pod_specs(run)
        if unwrap(workload.inputs)["metadata"]["name"] != "app"
        for c, _ in containers(pod)
    }
    return images | {unwrap(r.inputs)["name"] for r in run.of_type("index/remoteImage:RemoteImage")}


def test_renovate_json_matches_renovate_s_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.renovate",
         str(RENOVATE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_the_lock_and_the_actions_have_their_managers() -> None:
    config = _config()

    assert set(config["enabledManagers"]) == {
        "dockerfile", "pip-compile", "github-actions", "custom.regex"
    }  # fmt: skip
    assert _files(config["pip-compile"]["managerFilePatterns"]) == [
        PROJECT_ROOT / "app" / "requirements.lock"
    ]
    actions = [r for r in config["packageRules"] if r.get("matchManagers") == ["github-actions"]]
    assert [r.get("pinDigests") for r in actions] == [True]
    # The dockerfile manager reads FROM ${PYTHON_IMAGE} through the ARG's default (renovate
    # lib/modules/manager/dockerfile/extract.ts); the default must be one image reference.
    dockerfile = (PROJECT_ROOT / "app" / "Dockerfile").read_text()
    assert re.findall(r"(?m)^FROM (\S+)", dockerfile) == ["${PYTHON_IMAGE}"] * 2
    assert re.search(r"(?m)^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", dockerfile)


@pytest.mark.parametrize("stack", STACKS)
def test_every_third_party_image_a_stack_deploys_is_kept_current(stack: str) -> None:
    deployed = _deployed_images(stack)
    covered = set(_custom_images(_managers()["stacks/settings.py"]))

    assert len(deployed) >= 8
    assert deployed - covered == set()


def test_the_schema_s_copies_of_the_image_defaults_move_with_them() -> None:
    # The committed schema must stay what the settings generate (tests/stacks/test_schema.py),
    # so a pull request that moves a default in the settings moves it in the schema too: the
    # schema holds each default twice (the field's, and the section's default object).
    managers = _managers()
    defaults = _custom_images(managers["stacks/settings.py"])
    in_schema = _custom_images(managers["stacks/stack.schema.json"])

    assert sorted(managers) == ["stacks/settings.py", "stacks/stack.schema.json"]
    assert len(defaults) == len(set(defaults)) >= 9
    assert sorted(in_schema) == sorted(defaults * 2)
