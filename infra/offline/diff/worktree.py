"""Both sides of a diff rendered with their own code: the working tree, and the base ref in a
temporary `git worktree` (or an already rendered directory), each `python -m infra render` in a
subprocess."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra.offline.diff.model import DiffError, StackDiff
from infra.offline.diff.tree import Rendered, diff_stack, load_rendered
from infra.offline.project import PROJECT_ROOT
from infra.offline.render import FINGERPRINT_KEY
from infra.offline.stack_files import UnknownStackError, has_stack


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def _render_jobs(
    jobs: Sequence[tuple[Path, str, Path]], key: str | None
) -> list[subprocess.CompletedProcess[str]]:
    """Run `python -m infra render --stack S --out O` with cwd C for each (C, S, O), at most one
    per CPU at a time; each tree renders with its own code. `key` fingerprints the secrets of
    both sides alike."""
    env = {k: v for k, v in os.environ.items() if k != FINGERPRINT_KEY}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if key:
        env[FINGERPRINT_KEY] = key
    width = max(1, os.cpu_count() or 1)
    results: list[subprocess.CompletedProcess[str]] = []
    for start in range(0, len(jobs), width):
        batch = [
            (
                cwd,
                subprocess.Popen(
                    [sys.executable, "-m", "infra", "render", "--stack", stack, "--out", str(out)],
                    cwd=cwd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for cwd, stack, out in jobs[start : start + width]
        ]
        for _, process in batch:
            stdout, stderr = process.communicate()
            results.append(
                subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            )
    return results


def _render_trees(
    stacks: Sequence[str],
    base_tree: Path | None,
    head_tree: Path,
    out: Path,
    base_label: str,
    key: str | None,
) -> tuple[dict[str, Rendered | None], dict[str, Rendered]]:
    jobs: list[tuple[Path, str, Path]] = []
    for stack in stacks:
        at_base = base_tree is not None and has_stack(stack, base_tree)
        if has_stack(stack, head_tree):
            jobs.append((head_tree, stack, out / "head"))
        elif not at_base:
            raise UnknownStackError(stack, head_tree)
        if at_base and base_tree is not None:
            jobs.append((base_tree, stack, out / "base"))
    # A stack file removed since the base leaves nothing: every resource is a delete.
    heads: dict[str, Rendered] = {stack: Rendered({}) for stack in stacks}
    bases: dict[str, Rendered | None] = dict.fromkeys(stacks)
    for (tree, stack, target), result in zip(jobs, _render_jobs(jobs, key), strict=True):
        side = "the working tree" if tree == head_tree else base_label
        if result.returncode != 0:
            raise DiffError(
                f"rendering stack {stack} at {side} failed (exit {result.returncode}):\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        documents = load_rendered(target / stack)
        if tree == head_tree:
            heads[stack] = documents
        else:
            bases[stack] = documents
    return bases, heads


def diff_ref(stacks: Sequence[str], ref: str, root: Path = PROJECT_ROOT) -> list[StackDiff]:
    """Diff `stacks` between git `ref` and the working tree of `root`. The base renders from a
    temporary detached worktree of the ref, removed afterwards whatever happens."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise DiffError(f"{root} is not in a git repository: {top.stderr.strip()}")
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit.returncode != 0:
        raise DiffError(
            f"unknown git ref {ref!r}: no such branch, tag or commit here "
            "(in CI, fetch it first: actions/checkout with fetch-depth: 0)"
        )
    scratch = Path(tempfile.mkdtemp(prefix="safeguard-diff-"))
    worktree = scratch / "base"
    try:
        added = _git(root, "worktree", "add", "--detach", str(worktree), commit.stdout.strip())
        if added.returncode != 0:
            raise DiffError(f"git worktree add failed: {added.stderr.strip()}")
        # A new key per comparison: the digests mean nothing outside it.
        bases, heads = _render_trees(
            stacks, worktree / prefix, root, scratch, f"base {ref}", secrets.token_hex(16)
        )
    finally:
        _git(root, "worktree", "remove", "--force", str(worktree))
        shutil.rmtree(scratch, ignore_errors=True)
        _git(root, "worktree", "prune")
    return [diff_stack(stack, bases[stack], heads[stack]) for stack in stacks]


def diff_dir(stacks: Sequence[str], base_dir: Path, root: Path = PROJECT_ROOT) -> list[StackDiff]:
    """Diff `stacks` between an already rendered directory (`render --out DIR`) and the working
    tree of `root`. Secrets compare only when the directory was rendered with the
    SAFEGUARD_SECRET_FINGERPRINTS key set now; otherwise they are masked alike."""
    for stack in stacks:
        if not has_stack(stack, root) and not (base_dir / stack).is_dir():
            raise UnknownStackError(stack, root)
        if not (base_dir / stack).is_dir():
            raise DiffError(f"{base_dir / stack} does not exist: render the base stack there first")
    scratch = Path(tempfile.mkdtemp(prefix="safeguard-diff-"))
    try:
        _, heads = _render_trees(
            stacks, None, root, scratch, str(base_dir), os.environ.get(FINGERPRINT_KEY)
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [diff_stack(stack, load_rendered(base_dir / stack), heads[stack]) for stack in stacks]
