"""Offline diff: what `pulumi up` would change, from the desired state at a git ref to the working
tree, without an engine or a cloud.

Both sides are rendered with their own code (`python -m infra render` in a subprocess; the base in
a temporary `git worktree` of the ref) and compared file by file. A resource is identified by its
rendered file (provider, kind and logical name), and is classified as `pulumi preview` would:
create, update, delete, or replace when a changed property cannot be updated in place. Property
changes are listed like `pulumi preview --diff`: path, old => new, lists by index.

Secrets never show: the render already redacts them, values of a Kubernetes Secret's `data` and
`stringData` are masked even when plain, and a change touching a redacted value masks both sides.

Exit codes: 0 no changes, 3 changes, 2 error (unknown ref, a base that fails to render, bad flags).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.offline.runtime import PROJECT_ROOT, REDACTED
from spec import quantity

EXIT_NO_CHANGES = 0
EXIT_ERROR = 2
EXIT_CHANGES = 3

Action = Literal["create", "update", "replace", "delete"]
Op = Literal["add", "remove", "update"]
Path_ = tuple[str | int, ...]

# Why a change cannot be applied in place, by resource type. Kubernetes: the provider's table of
# properties that force replacement (pulumi-kubernetes v4, provider/pkg/provider/diff.go, with
# ConfigMaps and Secrets immutable as long as `enableConfigMapMutable`/`enableSecretMutable` are
# off, their default). A rule matches a changed path below it, or above it (the whole block added
# or removed).
_METADATA_RULES: tuple[tuple[Path_, str], ...] = (
    (("metadata", "name"), "the object's name cannot change"),
    (("metadata", "namespace"), "the object's namespace cannot change"),
)
_SELECTOR = "the label selector is immutable"
_KUBERNETES_RULES: dict[str, tuple[tuple[Path_, str], ...]] = {
    "apps/v1:Deployment": ((("spec", "selector"), _SELECTOR),),
    "apps/v1:DaemonSet": ((("spec", "selector"), _SELECTOR),),
    "apps/v1:StatefulSet": (
        (("spec", "selector"), _SELECTOR),
        (("spec", "serviceName"), "a StatefulSet's serviceName is immutable"),
        (
            ("spec", "volumeClaimTemplates"),
            "volumeClaimTemplates are immutable: the StatefulSet is recreated (its existing PVCs "
            "stay and are not resized)",
        ),
        (("spec", "podManagementPolicy"), "podManagementPolicy is immutable"),
        (("spec", "revisionHistoryLimit"), "pulumi-kubernetes replaces on revisionHistoryLimit"),
    ),
    "batch/v1:Job": (
        (("spec", "selector"), _SELECTOR),
        (("spec", "template"), "a Job's pod template is immutable"),
        (("spec", "completions"), "a Job's completions are immutable"),
        (("spec", "parallelism"), "pulumi-kubernetes replaces on a Job's parallelism"),
    ),
    "core/v1:PersistentVolumeClaim": (
        (("spec", "accessModes"), "a claim's access modes are immutable"),
        (("spec", "selector"), "a claim's selector is immutable"),
        (("spec", "storageClassName"), "a claim's storage class is immutable"),
        (("spec", "volumeName"), "a claim's volume is immutable"),
    ),
    "core/v1:Service": ((("spec", "clusterIP"), "a Service's clusterIP is immutable"),),
    "core/v1:Secret": (
        (("type",), "a Secret's type is immutable"),
        (("data",), "Secrets are replaced on change (enableSecretMutable is off)"),
        (("stringData",), "Secrets are replaced on change (enableSecretMutable is off)"),
    ),
    "core/v1:ConfigMap": (
        (("data",), "ConfigMaps are replaced on change (enableConfigMapMutable is off)"),
        (("binaryData",), "ConfigMaps are replaced on change (enableConfigMapMutable is off)"),
    ),
    "rbac.authorization.k8s.io/v1:ClusterRoleBinding": ((("roleRef",), "roleRef is immutable"),),
    "rbac.authorization.k8s.io/v1:RoleBinding": ((("roleRef",), "roleRef is immutable"),),
    "storage.k8s.io/v1:StorageClass": (
        (("parameters",), "a StorageClass's parameters are immutable"),
        (("provisioner",), "a StorageClass's provisioner is immutable"),
    ),
}

# Bridged Terraform providers: every input forces replacement except these, which the provider
# updates in place. Container: the non-ForceNew attributes of kreuzwerker/terraform-provider-docker
# (internal/provider/resource_docker_container.go, the provider pulumi-docker 4.x/5.x bridges; the
# pulumi_docker Python package ships no schema to read them from). Networks, volumes and random
# passwords have no updatable input at all.
_UPDATABLE_INPUTS: dict[str, frozenset[str]] = {
    "docker:index/container:Container": frozenset(
        {
            "attach",
            "containerReadRefreshTimeoutMilliseconds",
            "cpuPeriod",
            "cpuQuota",
            "cpuSet",
            "cpuShares",
            "destroyGraceSeconds",
            "healthcheck",
            "init",
            "logs",
            "maxRetryCount",
            "memory",
            "memorySwap",
            "mustRun",
            "removeVolumes",
            "restart",
            "rm",
            "start",
            "tmpfs",
            "wait",
            "waitTimeout",
        }
    ),
    "docker:index/network:Network": frozenset(),
    "docker:index/volume:Volume": frozenset(),
    "docker:index/remoteImage:RemoteImage": frozenset({"forceRemove", "keepLocally"}),
    "random:index/randomPassword:RandomPassword": frozenset(),
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DiffError(Exception):
    """The diff cannot be computed; the message says why and what to do."""


@dataclass(frozen=True)
class Change:
    """One property that differs between the base and the working tree."""

    path: str
    """Property path as `pulumi preview --diff` prints it: `spec.template.spec.containers[0]`."""
    op: Op
    """add (only in the working tree), remove (only in the base) or update."""
    old: Any
    """Value at the base (None when added); masked when secret."""
    new: Any
    """Value in the working tree (None when removed); masked when secret."""
    replaces: str | None = None
    """Why this change cannot be applied in place, when it forces a replacement."""
    masked: bool = False
    """True when the values are hidden because they are, or touch, a secret."""


@dataclass(frozen=True)
class ResourceDiff:
    """One resource whose desired state changes."""

    file: str
    """Rendered file, relative to the stack's render directory: its identity."""
    type: str
    """Pulumi type token: `kubernetes:apps/v1:Deployment`, `docker:index/container:Container`."""
    name: str
    """Kubernetes object name, or the logical name for other resources."""
    action: Action
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class StackDiff:
    """Everything that changes in one stack."""

    stack: str
    resources: tuple[ResourceDiff, ...]
    unchanged: int
    base_missing: bool = False
    """The stack file does not exist at the base: every resource is a create."""

    def counts(self) -> dict[str, int]:
        """Resources per action, plus `unchanged`."""
        counts = {action: 0 for action in ("create", "update", "replace", "delete")}
        for resource in self.resources:
            counts[resource.action] += 1
        return {**counts, "unchanged": self.unchanged}

    @property
    def changed(self) -> bool:
        return bool(self.resources)


# Comparing --------------------------------------------------------------------------------------


def load_rendered(directory: Path) -> dict[str, dict[str, Any]]:
    """The rendered files of one stack (`<out>/<stack>/`), by path relative to it."""
    return {
        path.relative_to(directory).as_posix(): yaml.safe_load(path.read_text()) or {}
        for path in sorted(directory.rglob("*.yaml"))
    }


def diff_stack(
    stack: str,
    base: dict[str, dict[str, Any]] | None,
    head: dict[str, dict[str, Any]],
) -> StackDiff:
    """Classify every resource of `head` against `base` (None: the stack is new at the base)."""
    old_files = base or {}
    resources: list[ResourceDiff] = []
    unchanged = 0
    for file in sorted(old_files.keys() | head.keys()):
        old, new = old_files.get(file), head.get(file)
        if old is None:
            resources.append(ResourceDiff(file, _type(new), _name(new), "create"))
        elif new is None:
            resources.append(ResourceDiff(file, _type(old), _name(old), "delete"))
        elif old == new:
            unchanged += 1
        else:
            changes = tuple(_changes(old, new))
            action: Action = "replace" if any(c.replaces for c in changes) else "update"
            resources.append(ResourceDiff(file, _type(new), _name(new), action, changes))
    return StackDiff(stack, tuple(resources), unchanged, base_missing=base is None)


def _type(document: dict[str, Any]) -> str:
    if "apiVersion" in document and "kind" in document:
        return f"kubernetes:{_group_version(document['apiVersion'])}:{document['kind']}"
    return str(document.get("type", "unknown"))


def _group_version(api_version: str) -> str:
    return api_version if "/" in api_version else f"core/{api_version}"


def _name(document: dict[str, Any]) -> str:
    if "apiVersion" in document:
        return str((document.get("metadata") or {}).get("name", ""))
    return str(document.get("name", ""))


def _changes(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    kubernetes = "apiVersion" in new and "kind" in new
    type_token = _type(new)
    # Kubernetes files are the manifest itself; other files wrap the resource's inputs, which is
    # what a preview compares.
    old_body = old if kubernetes else old.get("inputs", {})
    new_body = new if kubernetes else new.get("inputs", {})
    secret_kind = kubernetes and new.get("kind") == "Secret"
    for path, op, before, after in _walk(old_body, new_body, ()):
        masked = (secret_kind and path[:1] in (("data",), ("stringData",))) or (
            _touches_secret(before) or _touches_secret(after)
        )
        yield Change(
            path=format_path(path),
            op=op,
            old=REDACTED if masked and op != "add" else before,
            new=REDACTED if masked and op != "remove" else after,
            replaces=_replacement(type_token, kubernetes, path, before, after),
            masked=masked,
        )


def _walk(old: Any, new: Any, path: Path_) -> Iterator[tuple[Path_, Op, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            if key not in new:
                yield (*path, key), "remove", old[key], None
            elif key not in old:
                yield (*path, key), "add", None, new[key]
            else:
                yield from _walk(old[key], new[key], (*path, key))
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            if index >= len(new):
                yield (*path, index), "remove", old[index], None
            elif index >= len(old):
                yield (*path, index), "add", None, new[index]
            else:
                yield from _walk(old[index], new[index], (*path, index))
    elif old != new:
        yield path, "update", old, new


def _touches_secret(value: Any) -> bool:
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, dict):
        return any(_touches_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_touches_secret(v) for v in value)
    return False


def _replacement(type_token: str, kubernetes: bool, path: Path_, old: Any, new: Any) -> str | None:
    if kubernetes:
        group_kind = type_token.removeprefix("kubernetes:")
        for rule, reason in (*_METADATA_RULES, *_KUBERNETES_RULES.get(group_kind, ())):
            if path[: len(rule)] == rule or rule[: len(path)] == path:
                return reason
        return _special_kubernetes_rule(group_kind, path, old, new)
    updatable = _UPDATABLE_INPUTS.get(type_token)
    if updatable is not None and path and path[0] not in updatable:
        return f"`{path[0]}` cannot be updated in place ({type_token.split(':')[-1]})"
    return None


def _special_kubernetes_rule(group_kind: str, path: Path_, old: Any, new: Any) -> str | None:
    if (
        group_kind == "core/v1:Service"
        and path == ("spec", "type")
        and "ExternalName" in (old, new)
    ):
        return "a Service changing to or from ExternalName gains or loses its clusterIP"
    if group_kind == "core/v1:PersistentVolumeClaim" and path[:2] == ("spec", "resources"):
        if path == ("spec", "resources", "requests", "storage"):
            before, after = _quantity(old), _quantity(new)
            if before is not None and after is not None and after < before:
                return "a claim can only grow: Kubernetes refuses to shrink it"
            return None
        return "a claim's resources other than its storage request are immutable"
    return None


def _quantity(value: Any) -> Fraction | None:
    try:
        return quantity.parse(str(value))
    except ValueError:
        return None


def format_path(path: Path_) -> str:
    """`("spec", "containers", 0, "app.kubernetes.io/name")` -> `spec.containers[0]["app..."]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


# Rendering --------------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def _render_jobs(jobs: Sequence[tuple[Path, str, Path]]) -> list[subprocess.CompletedProcess[str]]:
    """Run `python -m infra render --stack S --out O` with cwd C for each (C, S, O), at most one
    per CPU at a time; each tree renders with its own code."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
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
    stacks: Sequence[str], base_tree: Path | None, head_tree: Path, out: Path, base_label: str
) -> tuple[dict[str, dict[str, dict[str, Any]] | None], dict[str, dict[str, dict[str, Any]]]]:
    jobs: list[tuple[Path, str, Path]] = []
    for stack in stacks:
        at_base = base_tree is not None and (base_tree / f"Pulumi.{stack}.yaml").exists()
        if (head_tree / f"Pulumi.{stack}.yaml").exists():
            jobs.append((head_tree, stack, out / "head"))
        elif not at_base:
            raise DiffError(f"no stack file Pulumi.{stack}.yaml, neither here nor at {base_label}")
        if at_base and base_tree is not None:
            jobs.append((base_tree, stack, out / "base"))
    # A stack file removed since the base leaves nothing: every resource is a delete.
    heads: dict[str, dict[str, dict[str, Any]]] = {stack: {} for stack in stacks}
    bases: dict[str, dict[str, dict[str, Any]] | None] = dict.fromkeys(stacks)
    for (tree, stack, target), result in zip(jobs, _render_jobs(jobs), strict=True):
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
        bases, heads = _render_trees(stacks, worktree / prefix, root, scratch, f"base {ref}")
    finally:
        _git(root, "worktree", "remove", "--force", str(worktree))
        shutil.rmtree(scratch, ignore_errors=True)
        _git(root, "worktree", "prune")
    return [diff_stack(stack, bases[stack], heads[stack]) for stack in stacks]


def diff_dir(stacks: Sequence[str], base_dir: Path, root: Path = PROJECT_ROOT) -> list[StackDiff]:
    """Diff `stacks` between an already rendered directory (`render --out DIR`) and the working
    tree of `root`."""
    for stack in stacks:
        if not (base_dir / stack).is_dir():
            raise DiffError(f"{base_dir / stack} does not exist: render the base stack there first")
    scratch = Path(tempfile.mkdtemp(prefix="safeguard-diff-"))
    try:
        _, heads = _render_trees(stacks, None, root, scratch, str(base_dir))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [diff_stack(stack, load_rendered(base_dir / stack), heads[stack]) for stack in stacks]


# Output -----------------------------------------------------------------------------------------

_SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}
_OP_SYMBOLS = {"add": "+", "remove": "-", "update": "~"}
_MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; details beyond this are left out."""


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _summary(diff: StackDiff) -> str:
    counts = diff.counts()
    parts = [f"{counts[a]} to {a}" for a in ("create", "update", "replace", "delete") if counts[a]]
    changes = ", ".join(parts) if parts else "no changes"
    note = " (stack file absent at the base)" if diff.base_missing else ""
    return f"{changes}, {counts['unchanged']} unchanged{note}"


def _change_lines(change: Change) -> list[str]:
    """A change as `pulumi preview --diff` shows it; multi-line strings as a unified diff."""
    symbol = _OP_SYMBOLS[change.op]
    note = f"  [forces replacement: {change.replaces}]" if change.replaces else ""
    if change.op == "add":
        head = f"{symbol} {change.path}: {_value(change.new)}"
    elif change.op == "remove":
        head = f"{symbol} {change.path}: {_value(change.old)}"
    elif (
        not change.masked
        and isinstance(change.old, str)
        and isinstance(change.new, str)
        and ("\n" in change.old or "\n" in change.new)
    ):
        lines = difflib.unified_diff(
            change.old.splitlines(),
            change.new.splitlines(),
            "base",
            "working tree",
            n=2,
            lineterm="",
        )
        return [f"{symbol} {change.path}:{note}", *(f"    {line}" for line in list(lines)[2:])]
    else:
        head = f"{symbol} {change.path}: {_value(change.old)} => {_value(change.new)}"
    return [head + note]


def format_text(diffs: Sequence[StackDiff], base: str) -> str:
    lines: list[str] = []
    for diff in diffs:
        lines.append(f"Stack {diff.stack} ({base} => working tree): {_summary(diff)}")
        for resource in diff.resources:
            symbol = _SYMBOLS[resource.action]
            lines.append(
                f"  {symbol:<2} {resource.action:<7} {resource.type} {resource.name}"
                f"  ({resource.file})"
            )
            for change in resource.changes:
                lines.extend(f"         {line}" for line in _change_lines(change))
        lines.append("")
    return "\n".join(lines)


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so no value can close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def format_markdown(diffs: Sequence[StackDiff], base: str) -> str:
    """For a PR comment: per stack, a summary table then the property changes, collapsed. Each
    stack is a section of its own, so the sections of separate runs can be concatenated."""
    sections = [_markdown_section(diff, base) for diff in diffs]
    text = "\n".join(sections)
    if len(text) <= _MARKDOWN_LIMIT:
        return text
    summaries = [section.split("<details>", 1)[0] for section in sections]
    return "\n".join(
        [
            *summaries,
            "Property changes are too long for a comment: run "
            f"`python -m infra diff --stack <stack> --base {base}` locally.",
            "",
        ]
    )


def _markdown_section(diff: StackDiff, base: str) -> str:
    counts = diff.counts()
    lines = [f"### Stack `{diff.stack}` against `{base}`: {_summary(diff)}", ""]
    if counts["replace"] or counts["delete"]:
        lines += [
            f"> [!WARNING]\n> {counts['replace']} to replace and {counts['delete']} to delete: "
            "a replaced or deleted StatefulSet, PersistentVolumeClaim or Docker volume can "
            "lose its data.",
            "",
        ]
    if not diff.resources:
        return "\n".join([*lines, "No changes.", ""])
    lines += ["| action | type | name | file |", "| --- | --- | --- | --- |"]
    for r in diff.resources:
        action = f"**{r.action}**" if r.action in ("replace", "delete") else r.action
        lines.append(f"| {action} | {_cell(r.type)} | {_cell(r.name)} | {_cell(r.file)} |")
    details = [r for r in diff.resources if r.changes]
    if details:
        lines += ["", f"<details><summary>Property changes ({len(details)})</summary>", ""]
        for resource in details:
            body = "\n".join(line for c in resource.changes for line in _change_lines(c))
            fence = _fence(body)
            lines += [
                f"**{resource.action}** `{resource.file}`",
                "",
                f"{fence}diff",
                body,
                fence,
                "",
            ]
        lines.append("</details>")
    return "\n".join([*lines, ""])


def to_json(diffs: Sequence[StackDiff], base: str) -> str:
    return json.dumps(
        {
            "base": base,
            "stacks": [
                {
                    "stack": d.stack,
                    "base_missing": d.base_missing,
                    "summary": d.counts(),
                    "resources": [
                        {
                            "file": r.file,
                            "type": r.type,
                            "name": r.name,
                            "action": r.action,
                            "changes": [
                                {
                                    "path": c.path,
                                    "op": c.op,
                                    "old": c.old,
                                    "new": c.new,
                                    "replaces": c.replaces,
                                    "masked": c.masked,
                                }
                                for c in r.changes
                            ],
                        }
                        for r in d.resources
                    ],
                }
                for d in diffs
            ],
        },
        indent=2,
        ensure_ascii=False,
        sort_keys=False,
    )


_FORMATS: dict[str, Callable[[Sequence[StackDiff], str], str]] = {
    "text": format_text,
    "markdown": format_markdown,
    "json": to_json,
}


# CLI --------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit codes: 0 no changes, 3 changes, 2 error"
    parser.add_argument(
        "--stack",
        action="append",
        required=True,
        help="dev, staging or production; repeat for several stacks",
    )
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", help="git ref to compare with (origin/main, a tag, a commit)")
    base.add_argument(
        "--base-dir",
        type=Path,
        help="an already rendered base (the --out of `python -m infra render`)",
    )
    parser.add_argument("--format", choices=sorted(_FORMATS), default="text")
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    stacks = list(dict.fromkeys(args.stack))
    try:
        if args.base is not None:
            diffs, label = diff_ref(stacks, args.base), args.base
        else:
            diffs, label = diff_dir(stacks, args.base_dir), str(args.base_dir)
    except DiffError as error:
        print(f"diff: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(_FORMATS[args.format](diffs, label))
    return EXIT_CHANGES if any(d.changed for d in diffs) else EXIT_NO_CHANGES
