"""The suite on a machine without the servers: one message up front names the missing programs
and their packages, `-m "not servers"` runs everything else, and the marker follows from the
fixtures, so a test that runs a program without one fails instead of drifting out of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = "tests/components/test_prometheus_rules.py"


def pytest_run(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_missing_program_stops_the_session_with_one_message(tmp_path: Path) -> None:
    result = pytest_run(PROMTOOL_TESTS, path=str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert "promtool (Debian package prometheus): needed by 5 test(s)" in output
    assert 'python -m pytest -m "not servers"' in output
    assert "passed" not in output and "Traceback" not in output
    assert len(output.splitlines()) < 10, output


def test_not_servers_runs_the_tests_that_need_no_program(tmp_path: Path) -> None:
    result = pytest_run(PROMTOOL_TESTS, "-m", "not servers", path=str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed, 5 deselected" in output


def test_running_a_program_without_its_fixture_fails_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_undeclared.py").write_text(
        "from tests.support.programs import Program\n\n\n"
        "def test_runs_sh_undeclared() -> None:\n"
        '    Program("sh", "dash").path()\n'
    )
    result = pytest_run(
        "-p", "tests.conftest", "--rootdir", str(tmp_path), str(tmp_path), path=os.environ["PATH"]
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "runs sh without a fixture that provides it" in output
