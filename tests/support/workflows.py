"""The GitHub workflows as data, and their `run` steps executed the way a runner executes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def job(workflow: str, name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][name]


def step(workflow: str, job_name: str, *, name: str | None = None, id: str | None = None) -> dict:
    """The step of the job with that name or id."""
    steps = job(workflow, job_name)["steps"]
    (found,) = [s for s in steps if (name and s.get("name") == name) or (id and s.get("id") == id)]
    return found


def run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """A step's `run` script under bash as a runner starts it (`bash --noprofile --norc -eo
    pipefail`), in `cwd` with `env` on top of this process's PATH. Returns the process, the
    outputs it wrote to GITHUB_OUTPUT, and what it wrote to GITHUB_STEP_SUMMARY."""
    output, summary = cwd / "github_output", cwd / "github_step_summary"
    output.write_text("")
    summary.write_text("")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": os.environ.get("HOME", "/root"),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done, outputs, summary.read_text()
