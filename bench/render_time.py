"""Render time: `python -m infra render` of each stack, in-process and repeated, and how it grows
with 1, 10 and 50 AppService components in the production stack.

    python -m bench.render_time [--repeat 5] [--apps 1,10,50] [--json out.json]

Per stack it times the program under mocks (`run_stack`) and the file rendering (`render`)
separately. For the growth figure the production program runs as written, then N-1 further
AppService components are registered on the same platform object, under the same mocks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import argument_parser, median, print_machine, write_json
from components.app_service import AppService, AppServiceArgs
from infra import program
from infra.offline.render import render
from infra.offline.runtime import StackRun, run_program, run_stack, stack_config
from spec.service import Compute

STACKS = ("dev", "staging", "production")


def time_stack(stack: str, repeat: int) -> dict[str, Any]:
    program_s, render_s, files = [], [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        run = run_stack(stack)
        middle = time.perf_counter()
        files = len(render(run))
        program_s.append(middle - start)
        render_s.append(time.perf_counter() - middle)
    return {
        "stack": stack,
        "resources": sum(1 for r in run.resources if r.custom),
        "files": files,
        "program_s": median(program_s),
        "render_s": median(render_s),
        "total_s": median([p + r for p, r in zip(program_s, render_s, strict=True)]),
    }


def with_apps(count: int) -> Callable[[], None]:
    """The production program plus count-1 more AppServices on the platform it created."""

    def run_program_with_apps() -> None:
        from stacks import load_settings

        settings = load_settings()
        captured: dict[str, Any] = {}
        make_platform = program._platform

        def capture(s: Any) -> Any:
            captured["platform"] = make_platform(s)
            return captured["platform"]

        # The program builds its platform privately; capturing it lets the extra services land
        # on the same namespace and back end as the real one.
        program._platform = capture
        try:
            program.run(settings)
        finally:
            program._platform = make_platform
        for index in range(2, count + 1):
            AppService(
                f"app{index}",
                AppServiceArgs(
                    platform=captured["platform"],
                    image=settings.app.image,
                    environment=settings.environment,
                    database_url="postgresql://app:secret@postgres:5432/app",
                    redis_url="redis://:secret@redis:6379/0",
                    compute=Compute(
                        cpu_request="100m",
                        memory_request="128Mi",
                        cpu_limit="500m",
                        memory_limit="256Mi",
                    ),
                    replicas=2,
                ),
            )

    return run_program_with_apps


def time_apps(count: int, repeat: int) -> dict[str, Any]:
    config, secret_keys = stack_config("production")
    totals = []
    run: StackRun | None = None
    for _ in range(repeat):
        start = time.perf_counter()
        run = run_program(
            with_apps(count), stack="production", config=config, secret_keys=secret_keys
        )
        render(run)
        totals.append(time.perf_counter() - start)
    assert run is not None
    return {
        "apps": count,
        "resources": sum(1 for r in run.resources if r.custom),
        "total_s": median(totals),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bench.render_time", __doc__)
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per stack (the median is reported)"
    )
    parser.add_argument("--apps", default="1,10,50", help="AppService components to grow to")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    info = print_machine()

    # The first run pays for imports and plugin schema loading; keep it out of the figures.
    run_stack("dev")
    stacks = [time_stack(stack, args.repeat) for stack in STACKS]
    print(f"{'stack':<11} {'resources':>9} {'program s':>10} {'render s':>9} {'total s':>8}")
    for row in stacks:
        print(
            f"{row['stack']:<11} {row['resources']:>9} {row['program_s']:>10.3f} "
            f"{row['render_s']:>9.3f} {row['total_s']:>8.3f}"
        )

    growth = [time_apps(int(n), args.repeat) for n in args.apps.split(",") if n]
    base = growth[0]
    print(f"\n{'apps':>5} {'resources':>9} {'total s':>8} {'ms/resource':>11} {'vs 1 app':>8}")
    for row in growth:
        row["ms_per_resource"] = row["total_s"] * 1000 / row["resources"]
        row["vs_first"] = row["total_s"] / base["total_s"]
        print(
            f"{row['apps']:>5} {row['resources']:>9} {row['total_s']:>8.3f} "
            f"{row['ms_per_resource']:>11.2f} {row['vs_first']:>8.2f}"
        )
    if len(growth) > 1:
        extra = (growth[-1]["total_s"] - base["total_s"]) / (growth[-1]["apps"] - base["apps"])
        print(f"each further AppService adds {extra * 1000:.1f} ms")
    write_json(args.json, {"machine": info, "stacks": stacks, "apps": growth})
    return 0


if __name__ == "__main__":
    sys.exit(main())
