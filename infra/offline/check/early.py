"""What a check of manifests does before it imports gRPC and the Pulumi SDK: it finds the files,
decides how many packs the input needs and starts them, so that they boot (about a third of a
second of CPU each) while the check imports the rest on the other core (a quarter of a second)
instead of after it. `check.manifests` then adopts the started packs (`analyzer.
PolicyPackProcess.start`). Only the standard library and PyYAML are imported here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.offline.check.report import CheckError
from infra.offline.launch import PackLaunch, PolicyPackError, StartedPack
from infra.offline.project import PROJECT, PROJECT_ROOT
from infra.offline.stack_files import require_stack

PACK_DIR = PROJECT_ROOT / "policies"
CONFIG_DIR = PACK_DIR / "config"

MANIFESTS_STACK = "manifests"
"""The stack name in URNs of manifests checked without `--stack`."""

MAX_PACKS = 4
RESOURCES_PER_PACK = 2000
"""Resources a pack's start pays for (a third of a second of CPU, on a machine whose cores are
shared): below it, one pack does all."""


def pack_launch(stack: str) -> PackLaunch:
    """How the check starts its pack for `stack`: as the CLI starts it for a preview."""
    return PackLaunch(pack_dir=PACK_DIR, project=PROJECT, stack=stack)


def pack_count(resources: int) -> int:
    """How many packs answer the Analyze calls of about `resources` resources: one per core
    at most."""
    return max(1, min(os.cpu_count() or 1, MAX_PACKS, 1 + resources // RESOURCES_PER_PACK))


def manifest_files(path: Path) -> list[Path]:
    """`path` itself, or every `.yaml`/`.yml` file below it, in a stable order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CheckError(f"{path} is neither a manifest file nor a directory")
    files = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise CheckError(f"{path} holds no .yaml or .yml files")
    return files


def estimated_objects(files: list[Path]) -> int:
    """About how many objects `files` hold, read before the packs start (a few milliseconds
    for tens of megabytes): every object says its `kind:`, and few say it more than once."""
    found = 0
    for file in files:
        try:
            found += file.read_bytes().count(b"kind:")
        except OSError:
            continue  # the reader names the file
    return found


@contextmanager
def packs_for_manifests(path: Path, stack: str | None) -> Iterator[list[StartedPack]]:
    """The packs for checking the manifests under `path`, started now: `pack_count` of them,
    and when that is more than one, one more, last, for AnalyzeStack alone (`check.shards`).
    Each is stopped on the way out unless a `PolicyPackProcess` adopted it (which stops it
    itself; stopping twice is harmless). An unknown stack or a path without manifests is
    refused before any starts."""
    if stack is not None:
        require_stack(stack)
    count = pack_count(estimated_objects(manifest_files(path)))
    if count > 1:
        count += 1
    launch = pack_launch(stack or MANIFESTS_STACK)
    started: list[StartedPack] = []
    try:
        try:
            for _ in range(count):
                started.append(launch.start())
        except PolicyPackError as error:
            raise CheckError(str(error)) from error
        yield started
    finally:
        for pack in started:
            pack.stop()
