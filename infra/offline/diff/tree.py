"""Comparing two rendered trees of one stack file by file, each resource classified as create,
update, replace or delete and its changed properties listed path by path, secrets masked."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from infra.offline.diff.model import Action, Change, Op, Path_, ResourceDiff, StackDiff
from infra.offline.diff.replacements import replacement
from infra.offline.runtime import REDACTED

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
            replaces=replacement(type_token, kubernetes, path, before, after),
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
