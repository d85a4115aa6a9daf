"""Comparing two rendered trees of one stack resource by resource, as the engine matches them:
by URN, then by alias (a resource whose URN changed, for instance by moving into another
component, is a delete and a create), each classified as create, update, replace or delete and
its changed properties listed path by path, secrets masked.

pulumi/pulumi@v3.259.0:pkg/resource/deploy/step_generator.go#getOldResource looks the old
state up by URN, then by the resource's aliases; #GenerateDeletes deletes what nothing matched.
A rendered tree without `index.json` (rendered before URNs were recorded) is matched by file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.offline import providers
from infra.offline.diff.model import Action, Change, Op, Path_, ResourceDiff, StackDiff
from infra.offline.diff.replacements import KubernetesConfig, replacement, shrink_warning
from infra.offline.render import INDEX
from infra.offline.runtime import REDACTED

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MASKED = re.compile(r"\[secret(?: [0-9a-f]{16})?\]")
"""A redacted value, with or without its fingerprint (infra.offline.render)."""


@dataclass(frozen=True)
class Rendered:
    """One stack's rendered files and what `index.json` says about them."""

    documents: dict[str, dict[str, Any]]
    urns: dict[str, str] = field(default_factory=dict)
    """File -> URN; empty for a tree rendered without an index."""
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    providers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per package, its provider's stack config."""


def load_rendered(directory: Path) -> Rendered:
    """The rendered files of one stack (`<out>/<stack>/`), by path relative to it."""
    documents = {
        path.relative_to(directory).as_posix(): yaml.safe_load(path.read_text()) or {}
        for path in sorted(directory.rglob("*.yaml"))
    }
    index_path = directory / INDEX
    if not index_path.is_file():
        return Rendered(documents)
    index = json.loads(index_path.read_text())
    resources = index.get("resources", {})
    return Rendered(
        documents,
        urns={f: r["urn"] for f, r in resources.items() if f in documents},
        aliases={f: tuple(r.get("aliases", ())) for f, r in resources.items() if f in documents},
        providers=index.get("providers", {}),
    )


def _as_rendered(tree: Rendered | Mapping[str, dict[str, Any]] | None) -> Rendered | None:
    if tree is None or isinstance(tree, Rendered):
        return tree
    return Rendered(dict(tree))


def _pairs(base: Rendered, head: Rendered) -> Iterator[tuple[str | None, str | None]]:
    """(base file, head file) of each resource: matched, created (None, f) or deleted (f, None)."""
    if not (base.urns and head.urns):
        for file in sorted(base.documents.keys() | head.documents.keys()):
            yield (
                file if file in base.documents else None,
                file if file in head.documents else None,
            )
        return
    by_urn = {urn: file for file, urn in base.urns.items()}
    matched: set[str] = set()
    found: list[tuple[str | None, str | None]] = []
    for file in sorted(head.documents):
        urn = head.urns.get(file)
        old = by_urn.get(urn) if urn else None
        if old is None or old in matched:
            candidates = (by_urn.get(alias) for alias in head.aliases.get(file, ()))
            old = next((c for c in candidates if c is not None and c not in matched), None)
        if old is not None:
            matched.add(old)
        found.append((old, file))
    found += [(file, None) for file in base.documents if file not in matched]
    yield from sorted(found, key=lambda pair: (pair[1] or pair[0] or "", pair[0] is None))


def diff_stack(
    stack: str,
    base: Rendered | Mapping[str, dict[str, Any]] | None,
    head: Rendered | Mapping[str, dict[str, Any]],
) -> StackDiff:
    """Classify every resource of `head` against `base` (None: the stack is new at the base)."""
    old_tree = _as_rendered(base) or Rendered({})
    new_tree = _as_rendered(head)
    assert new_tree is not None
    if base is not None and not (_fingerprinted(old_tree) and _fingerprinted(new_tree)):
        # One side was rendered without a fingerprint key (older code, or a --base-dir made
        # without SAFEGUARD_SECRET_FINGERPRINTS): secrets cannot be compared, only masked.
        old_tree, new_tree = _unfingerprinted(old_tree), _unfingerprinted(new_tree)
    config = KubernetesConfig.of(new_tree.providers.get("kubernetes", {}))
    resources: list[ResourceDiff] = []
    unchanged = 0
    moved = _moved(old_tree, new_tree)
    for old_file, new_file in _pairs(old_tree, new_tree):
        old = old_tree.documents.get(old_file) if old_file else None
        new = new_tree.documents.get(new_file) if new_file else None
        if old is None and new is not None and new_file is not None:
            warnings = moved.get(new_file, ())
            resources.append(ResourceDiff(new_file, _type(new), _name(new), "create", (), warnings))
        elif new is None and old is not None and old_file is not None:
            resources.append(ResourceDiff(old_file, _type(old), _name(old), "delete"))
        elif old is not None and new is not None and new_file is not None:
            changes = tuple(_changes(old, new, config))
            if not changes:
                unchanged += 1
                continue
            action: Action = "replace" if any(c.replaces for c in changes) else "update"
            warnings = tuple(
                w
                for c in changes
                if (w := shrink_warning(_type(new), c.parts, c.old, c.new)) is not None
            )
            resources.append(
                ResourceDiff(
                    new_file,
                    _type(new),
                    _name(new),
                    action,
                    tuple(c.change for c in changes),
                    warnings,
                )
            )
    return StackDiff(stack, tuple(resources), unchanged, base_missing=base is None)


_FINGERPRINTED = re.compile(r"\[secret [0-9a-f]{16}\]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _fingerprinted(tree: Rendered) -> bool:
    return any(_FINGERPRINTED.search(text) for text in _strings(tree.documents))


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return _FINGERPRINTED.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _unfingerprinted(tree: Rendered) -> Rendered:
    return Rendered(
        {file: _strip(doc) for file, doc in tree.documents.items()},
        tree.urns,
        tree.aliases,
        tree.providers,
    )


def _moved(base: Rendered, head: Rendered) -> dict[str, tuple[str, ...]]:
    """Kubernetes objects deleted under one URN and created under another with the same name
    and namespace: since pulumi-kubernetes 4.29 the create runs first and fails with
    AlreadyExists (CHANGELOG.md, v4.29.0; provider/pkg/await/await.go#Creation), which the
    preview does not show."""
    if not (base.urns and head.urns):
        return {}
    old_urns = set(base.urns.values())
    old_objects = {
        _object_key(doc): base.urns.get(file)
        for file, doc in base.documents.items()
        if "kind" in doc
    }
    found: dict[str, tuple[str, ...]] = {}
    for file, doc in head.documents.items():
        urn = head.urns.get(file)
        if "kind" not in doc or urn in old_urns or set(head.aliases.get(file, ())) & old_urns:
            continue
        old_urn = old_objects.get(_object_key(doc))
        if old_urn is not None:
            found[file] = (
                f"its URN changed from {old_urn} to {urn}: `pulumi up` creates the new one "
                "before deleting the old, and the create fails with AlreadyExists; add an "
                "alias naming the old URN (or its old parent) to keep it as it is",
            )
    return found


def _object_key(document: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = document.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    if providers.namespaced(str(document.get("kind", ""))):
        namespace = namespace or "default"
    return str(document.get("kind")), namespace, str(metadata.get("name", ""))


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


@dataclass(frozen=True)
class _Found:
    change: Change
    parts: Path_

    @property
    def replaces(self) -> str | None:
        return self.change.replaces

    @property
    def old(self) -> Any:
        return self.change.old

    @property
    def new(self) -> Any:
        return self.change.new


def _canonical_namespace(document: dict[str, Any]) -> dict[str, Any]:
    """The namespace as the provider's Diff compares it: `default` when a namespaced object has
    none, none at all for a cluster-scoped one (pulumi/pulumi-kubernetes@v4.32.0:
    provider/pkg/provider/provider.go#(*kubeProvider).Diff, canonicalNamespace)."""
    metadata = dict(document.get("metadata") or {})
    if providers.namespaced(str(document.get("kind", ""))):
        metadata["namespace"] = metadata.get("namespace") or "default"
    else:
        metadata.pop("namespace", None)
    return {**document, "metadata": metadata}


def _changes(
    old: dict[str, Any], new: dict[str, Any], config: KubernetesConfig
) -> Iterator[_Found]:
    kubernetes = "apiVersion" in new and "kind" in new
    type_token = _type(new)
    # Kubernetes files are the manifest itself; other files wrap the resource's inputs, which is
    # what a preview compares.
    old_body = _canonical_namespace(old) if kubernetes else old.get("inputs", {})
    new_body = _canonical_namespace(new) if kubernetes else new.get("inputs", {})
    secret_kind = kubernetes and new.get("kind") == "Secret"
    sets = frozenset() if kubernetes else providers.SET_INPUTS.get(type_token, frozenset())
    for path, op, before, after in _walk(old_body, new_body, (), sets):
        masked = (secret_kind and path[:1] in (("data",), ("stringData",))) or (
            _touches_secret(before) or _touches_secret(after)
        )
        change = Change(
            path=format_path(path),
            op=op,
            old=REDACTED if masked and op != "add" else before,
            new=REDACTED if masked and op != "remove" else after,
            replaces=replacement(
                type_token, kubernetes, path, before, after, document=new, config=config
            ),
            masked=masked,
        )
        yield _Found(change, path)


def _walk(
    old: Any, new: Any, path: Path_, sets: frozenset[tuple[str, ...]]
) -> Iterator[tuple[Path_, Op, Any, Any]]:
    if isinstance(old, list) and isinstance(new, list) and path in sets:
        # A Terraform set: no order, so only elements that appear or disappear count; one that
        # keeps its name (`NAME=` of an env entry, a label's key...) is shown as changed.
        old_keys = [json.dumps(v, sort_keys=True) for v in old]
        new_keys = [json.dumps(v, sort_keys=True) for v in new]
        gone = [i for i, key in enumerate(old_keys) if key not in new_keys]
        added = [i for i, key in enumerate(new_keys) if key not in old_keys]
        for index in gone:
            name = _key(old[index])
            partner = next((j for j in added if name is not None and _key(new[j]) == name), None)
            if partner is None:
                yield (*path, index), "remove", old[index], None
            else:
                added.remove(partner)
                yield from _walk(old[index], new[partner], (*path, partner), sets)
        for index in added:
            yield (*path, index), "add", None, new[index]
    elif isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys(), key=str):
            if key not in new:
                yield (*path, key), "remove", old[key], None
            elif key not in old:
                yield (*path, key), "add", None, new[key]
            else:
                yield from _walk(old[key], new[key], (*path, key), sets)
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            if index >= len(new):
                yield (*path, index), "remove", old[index], None
            elif index >= len(old):
                yield (*path, index), "add", None, new[index]
            else:
                yield from _walk(old[index], new[index], (*path, index), sets)
    elif old != new:
        yield path, "update", old, new


def _key(element: Any) -> str | None:
    """What names a set element: the `NAME` of `NAME=value`, or an object's identifying field."""
    if isinstance(element, str) and "=" in element:
        return element.split("=", 1)[0]
    if isinstance(element, dict):
        for field_name in ("label", "name", "file", "target", "containerPath", "host", "path"):
            if isinstance(element.get(field_name), str):
                return f"{field_name}={element[field_name]}"
    return None


def _touches_secret(value: Any) -> bool:
    if isinstance(value, str):
        return _MASKED.search(value) is not None
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
