"""Plain Kubernetes manifests (Helm output, `kubectl get -o yaml`, hand-written files) as
subjects of the check, each document a resource of its Pulumi type token."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.offline.analyzer import PolicyPackProcess, Provider, Resource
from infra.offline.check.pack import analyze, pack_config_for, policy_pack
from infra.offline.check.programs import default_provider, require_stack
from infra.offline.check.report import CheckError, Report, Subject

MANIFESTS_STACK = "manifests"
"""The stack name in URNs of manifests checked without `--stack`."""


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as the Kubernetes API reads it: an unquoted date stays the string it is."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class _Problems:
    """Everything wrong with the manifests, reported together."""

    found: list[str] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        self.found.append(f"{where}: {what}")


def type_token(api_version: str, kind: str) -> str:
    """The Pulumi type token of a Kubernetes kind: `apps/v1` Deployment ->
    `kubernetes:apps/v1:Deployment`, `v1` Pod -> `kubernetes:core/v1:Pod`."""
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{kind}"


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


def load_manifests(path: Path, stack: str = MANIFESTS_STACK) -> list[Subject]:
    """Every manifest under `path` as a resource of its type token, its properties the manifest.

    Empty documents are skipped and `kind: List` is expanded; anything else that is not a
    Kubernetes object raises CheckError naming the file, the document (1-based) and the field.
    """
    return list(iter_manifests(path, stack))


def iter_manifests(path: Path, stack: str = MANIFESTS_STACK) -> Iterator[Subject]:
    """`load_manifests`, one file at a time; the CheckError listing every problem comes after
    the last file (nothing is yielded once a problem is found)."""
    problems = _Problems()
    provider = default_provider("kubernetes", stack)
    root = path if path.is_dir() else path.parent
    for file in manifest_files(path):
        shown = str(file.relative_to(root)) if file != path else str(file)
        try:
            documents = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_Loader))
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
            problems.add(shown, f"not valid YAML: {_yaml_problem(error)}")
            continue
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            where = f"{shown}#{index}"
            for item_where, manifest in _objects(document, where, problems):
                subject = _subject(manifest, item_where, problems, provider)
                if subject is not None and not problems.found:
                    yield subject
    if problems.found:
        raise CheckError("malformed manifests:\n  " + "\n  ".join(problems.found))


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem).splitlines()[0]


def _objects(
    document: Any, where: str, problems: _Problems
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(document, Mapping):
        problems.add(where, f"is a {_kind_of_value(document)}, not a Kubernetes object (a mapping)")
        return
    if document.get("kind") == "List" and isinstance(document.get("items"), list):
        for index, item in enumerate(document["items"]):
            if isinstance(item, Mapping):
                yield f"{where} items[{index}]", item
            else:
                problems.add(
                    f"{where} items[{index}]", f"is a {_kind_of_value(item)}, not a mapping"
                )
        return
    yield where, document


def _kind_of_value(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _subject(
    manifest: Mapping[str, Any], where: str, problems: _Problems, provider: Provider
) -> Subject | None:
    missing = [
        key
        for key in ("apiVersion", "kind")
        if not isinstance(manifest.get(key), str) or not manifest[key]
    ]
    metadata = manifest.get("metadata")
    name = None
    if not isinstance(metadata, Mapping):
        missing.append("metadata")
    else:
        name = metadata.get("name") or metadata.get("generateName")
        if not isinstance(name, str) or not name:
            missing.append("metadata.name")
    if missing:
        problems.add(where, f"{', '.join(missing)} missing or not a string")
        return None
    assert isinstance(metadata, Mapping) and isinstance(name, str)
    try:
        properties = _plain(manifest)
    except ValueError as error:
        problems.add(where, str(error))
        return None
    namespace = metadata.get("namespace")
    qualified = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
    resource = Resource(
        type=type_token(manifest["apiVersion"], manifest["kind"]),
        name=qualified,
        properties=properties,
        provider=provider,
    )
    return Subject(resource=resource, source=where)


def _plain(manifest: Mapping[str, Any]) -> Any:
    """The manifest as JSON values (what the engine sends); `!!binary` becomes base64 text."""
    return json.loads(json.dumps(manifest, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise ValueError(f"holds a {type(value).__name__} value, which a manifest cannot hold")


def check_manifests(
    path: Path,
    *,
    stack: str | None = None,
    pack_config: Path | None = None,
    pack: PolicyPackProcess | None = None,
) -> Report:
    """Check the manifests under `path` with `pack_config` (or `stack`'s, or the defaults)."""
    if stack is not None:
        require_stack(stack)
    subjects = iter_manifests(path, stack or MANIFESTS_STACK)
    config = pack_config_for(stack, pack_config)
    if pack is None:
        with policy_pack(stack or MANIFESTS_STACK) as started:
            report = analyze(started, subjects, config)
    else:
        report = analyze(pack, subjects, config)
    return dataclasses.replace(report, stack=stack, manifests=str(path))
