"""Policy gate speed: `python -m infra check --manifests DIR` over synthetic stacks of 100, 1,000
and 10,000 workloads, checkov over the same files as the peer to beat, and the wall clock of the
whole production-stack check (`python -m infra check --stack production`).

    python -m bench.gate_speed [--sizes 100,1000,10000] [--checkov PATH] [--json out.json]

Each workload is one file with a Deployment (non-root, probes, limits, read-only root, pinned
image), its Service and its NetworkPolicy, so the pack passes them and the timing is of a full
evaluation, not an early failure. checkov runs offline: no platform API key, `--skip-download`
(no guidelines or policy metadata from Prisma Cloud), BC_SKIP_MAPPING=TRUE, Kubernetes framework
only. checkov is a bench-only dependency (bench/requirements.txt); install it in its own venv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench._common import BenchError, print_machine, run_timed, write_json
from tests.support.manifests import generate


def checkov_env() -> dict[str, str]:
    # Offline: no platform API key, no mapping download, no colour codes in the output.
    env = {k: v for k, v in os.environ.items() if k not in ("BC_API_KEY", "PRISMA_API_URL")}
    env.update({"BC_SKIP_MAPPING": "TRUE", "ANSI_COLORS_DISABLED": "TRUE"})
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="workloads per stack")
    parser.add_argument(
        "--checkov",
        default=shutil.which("checkov") or "/opt/checkov-venv/bin/checkov",
        help="checkov executable ('' to skip)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (best is kept)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    use_checkov = bool(args.checkov) and Path(args.checkov).exists()

    info = print_machine()
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
        print(f"{'workloads':>9} {'resources':>9} {'gate s':>8} {'res/s':>8} {'ms/res':>7}", end="")
        print(f" {'checkov s':>9} {'res/s':>8} {'checkov/gate':>12}" if use_checkov else "")
        for size in sizes:
            directory = root / f"w{size}"
            resources = generate(directory, size)
            gate_s = min(
                run_timed([*gate, "--manifests", str(directory)], timeout=3600)
                for _ in range(args.repeat)
            )
            row = {"workloads": size, "resources": resources, "gate_seconds": gate_s}
            line = (
                f"{size:>9} {resources:>9} {gate_s:>8.2f} {resources / gate_s:>8.0f} "
                f"{gate_s * 1000 / resources:>7.2f}"
            )
            if use_checkov:
                cmd = [
                    args.checkov, "-d", str(directory), "--framework", "kubernetes",
                    "--quiet", "--compact", "--skip-download",
                ]  # fmt: skip
                checkov_s = min(
                    run_timed(cmd, env=checkov_env(), timeout=3600) for _ in range(args.repeat)
                )
                row["checkov_seconds"] = checkov_s
                line += (
                    f" {checkov_s:>9.2f} {resources / checkov_s:>8.0f} {checkov_s / gate_s:>12.2f}"
                )
            results.append(row)
            print(line, flush=True)
            shutil.rmtree(directory, ignore_errors=True)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = results[0]["gate_seconds"] / results[0]["resources"]
    print("\nper-resource time relative to the smallest stack (1.00 = linear):")
    for row in results:
        ratio = row["gate_seconds"] / row["resources"] / base
        row["per_resource_vs_smallest"] = round(ratio, 3)
        print(f"  {row['workloads']:>6} workloads: {ratio:.2f}")
    write_json(
        args.json,
        {"machine": info, "stack_check_seconds": stack_times, "manifests": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
