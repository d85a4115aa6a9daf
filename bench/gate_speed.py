"""Policy gate speed: `python -m infra check --manifests` against checkov, side by side in one run,
on directories of third-party manifests given on the command line and on synthetic stacks of
100, 1,000 and 10,000 workloads; and the wall clock of `python -m infra check --stack production`.

    python -m bench.gate_speed [DIR ...] [--sizes 100,1000,10000] [--checkov PATH]
                               [--checkov-up-to RESOURCES] [--repeat N] [--json out.json]

Each synthetic workload is one file with a Deployment (non-root, probes, limits, read-only root,
pinned image), its Service and its NetworkPolicy, so the pack passes them and the timing is of a
full evaluation, not an early failure. A directory given on the command line is timed as it is
(e.g. /work/shared/realworld: nine projects' manifests). The gate and checkov run alternately,
`--repeat` times each, the best kept. checkov runs offline: no platform API key,
`--skip-download` (no guidelines or policy metadata from Prisma Cloud), BC_SKIP_MAPPING=TRUE,
Kubernetes framework only; it is a bench-only tool (bench/requirements-checkov.txt), installed in
a venv of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._common import BenchError, argument_parser, print_machine, run_timed, write_json
from infra.offline.check import load_manifests
from tests.support.manifests import generate

DEFAULT_CHECKOV = "/opt/checkov-venv/bin/checkov"


def interpreter(python: str) -> str:
    """`python`'s version and real path, e.g. `3.11.2 /usr/bin/python3.11`: a PGO build of the
    same release runs both tools about 15 % faster than a plain one, so a figure names it."""
    path = os.path.realpath(shutil.which(python) or python)
    version = subprocess.run(
        [path, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{version} {path}"


def script_python(script: str) -> str:
    """The interpreter an entry-point script (checkov's) runs on: its `#!` line's."""
    first = Path(script).read_text(errors="replace").split("\n", 1)[0]
    words = first[2:].split() if first.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env":
        words = [word for word in words[1:] if not word.startswith("-")]
    if not words:
        raise BenchError(f"{script} has no #! line naming its Python")
    return words[0]


def checkov_env() -> dict[str, str]:
    # Offline: no platform API key, no mapping download, no colour codes in the output.
    env = {k: v for k, v in os.environ.items() if k not in ("BC_API_KEY", "PRISMA_API_URL")}
    env.update({"BC_SKIP_MAPPING": "TRUE", "ANSI_COLORS_DISABLED": "TRUE"})
    return env


def _side_by_side(
    name: str, directory: Path, resources: int, checkov: str | None, repeat: int
) -> dict[str, Any]:
    gate_cmd = [sys.executable, "-m", "infra", "check", "--manifests", str(directory)]
    checkov_cmd = [
        str(checkov), "-d", str(directory), "--framework", "kubernetes",
        "--quiet", "--compact", "--skip-download",
    ]  # fmt: skip
    gate_times, checkov_times = [], []
    for _ in range(repeat):
        gate_times.append(run_timed(gate_cmd, timeout=3600))
        if checkov:
            checkov_times.append(run_timed(checkov_cmd, env=checkov_env(), timeout=7200))
    row: dict[str, Any] = {
        "input": name,
        "resources": resources,
        "gate_seconds": min(gate_times),
        "gate_runs": [round(t, 2) for t in gate_times],
    }
    gate_s = row["gate_seconds"]
    line = f"{name:>28} {resources:>9} {gate_s:>8.2f} {resources / gate_s:>8.0f}"
    if checkov_times:
        row["checkov_seconds"] = min(checkov_times)
        row["checkov_runs"] = [round(t, 2) for t in checkov_times]
        row["checkov_over_gate"] = round(row["checkov_seconds"] / row["gate_seconds"], 2)
        line += f" {row['checkov_seconds']:>9.2f} {row['checkov_over_gate']:>12.2f}"
    print(line, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bench.gate_speed", __doc__)
    parser.add_argument(
        "directories", nargs="*", type=Path, metavar="DIR", help="third-party manifests to time"
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="synthetic workloads per stack")
    parser.add_argument(
        "--checkov",
        default=shutil.which("checkov") or DEFAULT_CHECKOV,
        help="checkov executable ('' to time the gate alone)",
    )
    parser.add_argument(
        "--checkov-up-to",
        type=int,
        default=3000,
        metavar="RESOURCES",
        help="time checkov on inputs of at most this many resources (it took over 30 minutes "
        "on 30,000)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each tool per input")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    checkov = args.checkov if args.checkov and Path(args.checkov).exists() else None
    if args.checkov and checkov is None:
        print(f"no checkov at {args.checkov}: timing the gate alone", file=sys.stderr)
    for directory in args.directories:
        if not directory.is_dir():
            parser.error(f"{directory} is not a directory")

    info = print_machine()
    # The packs run on `python3` from PATH, as the Pulumi CLI starts them.
    pythons = {"gate": sys.executable, "packs": "python3"}
    if checkov:
        pythons["checkov"] = script_python(checkov)
    info["interpreters"] = {tool: interpreter(python) for tool, python in pythons.items()}
    print("interpreters: " + ", ".join(f"{k} {v}" for k, v in info["interpreters"].items()))
    if len(set(info["interpreters"].values())) > 1:
        print(
            "note: the tools run on different interpreters, so the figures do not compare like "
            "for like (activate one venv's interpreter for the gate and its packs, and install "
            "checkov with the same Python)",
            file=sys.stderr,
        )
    results = []
    root = Path(tempfile.mkdtemp(prefix="safeguard-gate-"))
    try:
        gate = [sys.executable, "-m", "infra", "check"]
        stack_times = [run_timed([*gate, "--stack", "production"]) for _ in range(3)]
        print(
            f"python -m infra check --stack production: best {min(stack_times):.2f} s, "
            f"runs {', '.join(f'{t:.2f}' for t in stack_times)} (target <= 3 s)",
            flush=True,
        )
        header = f"{'input':>28} {'resources':>9} {'gate s':>8} {'res/s':>8}"
        print(header + (f" {'checkov s':>9} {'checkov/gate':>12}" if checkov else ""))
        for directory in args.directories:
            resources = len(load_manifests(directory))
            peer = checkov if resources <= args.checkov_up_to else None
            results.append(_side_by_side(str(directory), directory, resources, peer, args.repeat))
        for size in sizes:
            directory = root / f"w{size}"
            resources = generate(directory, size)
            peer = checkov if resources <= args.checkov_up_to else None
            name = f"synthetic {size} workloads"
            results.append(_side_by_side(name, directory, resources, peer, args.repeat))
            shutil.rmtree(directory, ignore_errors=True)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)

    write_json(args.json, {"machine": info, "stack_check_seconds": stack_times, "inputs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
