"""Shared by the benchmark scripts: the machine description, timing helpers and report output."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def argument_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The command line of `python -m <module>`: the usage line names that command (the scripts
    import the project, so they run as modules of the checkout, not as files), and --help shows
    every option's default."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


class BenchError(RuntimeError):
    """A benchmark could not produce a trustworthy figure (errors, non-2xx answers, no tool)."""


def machine() -> dict[str, Any]:
    """What a figure must be recorded with: cores, CPU model, memory, OS, Python, date."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def print_machine() -> dict[str, Any]:
    info = machine()
    print(
        f"machine: {info['nproc']} cores, {info['cpu_model']}, {info['memory_gib']} GiB, "
        f"Linux {info['kernel']}, Python {info['python']}, "
        f"load {info['load_average_1m']} at start, {info['date']}"
    )
    return info


def timed(func: Callable[[], Any], repeat: int) -> list[float]:
    """Wall-clock seconds of each of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_timed(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> float:
    """Seconds a command takes; raises BenchError with its output unless it exits 0 or 1.

    Exit 1 is a policy verdict (violations found), not a failure of the tool being timed.
    """
    start = time.perf_counter()
    result = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise BenchError(
            f"{' '.join(cmd)} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return elapsed


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and every descendant (live, or exited and reaped)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], cpu[int(entry.name)] = found
    total = 0.0
    for pid, seconds in cpu.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == root:
            total += seconds
    return total


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")
