"""The commands a new user runs as the README and BENCHMARKS.md write them: the benchmarks'
usage names the command that runs them and every option's default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


def test_every_benchmark_is_covered() -> None:
    assert BENCHMARKS == ["app_throughput", "gate_speed", "render_time", "restore_time"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_bench_help_names_its_command_and_every_default(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m bench.{name} [-h]")
    options = result.stdout.split("options:", 1)[1]
    # Each option's entry, its help text joined over wrapped lines.
    entries = re.split(r"\n  (?=-)", options.strip())
    described = [" ".join(entry.split()) for entry in entries if not entry.startswith("-h,")]
    assert described
    for entry in described:
        assert "(default: " in entry, entry
