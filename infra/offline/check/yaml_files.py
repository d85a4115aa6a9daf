"""Manifest files parsed into JSON values, in this process or, for large inputs, in a process
of its own: PyYAML's parser is C but its resolver and constructor are Python, about a third of
a millisecond per object, which the checking process would otherwise spend under its GIL while
the packs wait for their next calls. A worker process imports only this module (and PyYAML).
"""

from __future__ import annotations

import json
import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

# Helm's built-in objects and the functions only Helm has. Other tools template strings with
# `{{ }}` too (Prometheus rules: `{{ $labels.pod }}`, Grafana: `{{instance}}`, Argo CD
# notifications: `{{.app.metadata.name}}`); those are values, and stay checkable.
_HELM_ACTION = re.compile(
    r"\{\{-?[^{}]*?(?:\$?\.(?:Values|Release|Chart|Capabilities|Files|Template)\b"
    r"|\b(?:include|tpl|required|lookup|toYaml|fromYaml|toJson)\b)[^{}]*?-?\}\}"
)

FILES_PER_TASK = 32
"""Files a worker parses per round trip: enough to make the pickling of tasks negligible."""


_STR: Final = "tag:yaml.org,2002:str"
_MAP: Final = "tag:yaml.org,2002:map"
_SEQ: Final = "tag:yaml.org,2002:seq"
_MERGE_KEYS: Final = frozenset(("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"))
_JSON_KEYS: Final = (bool, int, float, type(None))
_RESOLVED_UP_TO: Final = 64
"""Plain scalars up to this length have their tag remembered: names, labels and ports repeat
in every manifest, and the resolver's regular expressions are Python."""


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as the Kubernetes API reads it, straight into JSON values: an unquoted date stays
    the string it is, `!!binary` stays its base64 text, a key that is not a string is the JSON
    text of the value PyYAML reads (`1:` and `true:` are "1" and "true").

    Documents are built by `construct_document` in one pass over the composed nodes, with
    SafeLoader's own constructors for every scalar that is not a plain string and its own
    merging of `<<` keys, instead of SafeLoader's general machinery (state generators, a
    constructor looked up per node), which took two thirds of the parsing time. Any other
    tag is left to that machinery, and its value checked to be JSON.
    """

    _resolved: ClassVar[dict[tuple[str, Any], str]] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        if kind is not ScalarNode or len(value) > _RESOLVED_UP_TO:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = self._resolved[key] = str(super().resolve(kind, value, implicit))
        return tag

    def construct_document(self, node: yaml.Node) -> Any:
        built: dict[int, Any] = {}
        building: set[int] = set()
        scalars = {tag: make for tag, make in self.yaml_constructors.items() if tag}

        def value(node: yaml.Node) -> Any:
            kind, tag = type(node), node.tag
            if kind is ScalarNode:
                if tag == _STR:
                    return node.value
                make = scalars.get(tag) if tag not in (_MAP, _SEQ) else None
                return make(self, node) if make is not None else other(node)
            # An alias is the node of its anchor again: the same value, built once.
            if id(node) in built:
                return built[id(node)]
            if id(node) in building:
                raise ConstructorError(
                    None, None, "a recursive alias, which a manifest cannot hold", node.start_mark
                )
            building.add(id(node))
            result: Any
            if kind is MappingNode and tag == _MAP:
                if any(key.tag in _MERGE_KEYS for key, _ in node.value):
                    self.flatten_mapping(node)
                result = {}
                for key_node, value_node in node.value:
                    key = value(key_node)
                    result[key if type(key) is str else json_key(key, node, key_node)] = value(
                        value_node
                    )
            elif kind is SequenceNode and tag == _SEQ:
                result = [value(child) for child in node.value]
            else:
                result = other(node)
            building.discard(id(node))
            built[id(node)] = result
            return result

        def json_key(key: Any, node: yaml.Node, key_node: yaml.Node) -> str:
            if isinstance(key, _JSON_KEYS):
                return json.dumps(key)
            problem = (
                "found unhashable key"
                if isinstance(key, dict | list)
                else f"found a {type(key).__name__} key, which a manifest cannot hold"
            )
            raise ConstructorError(
                "while constructing a mapping", node.start_mark, problem, key_node.start_mark
            )

        def other(node: yaml.Node) -> Any:
            result = super(_Loader, self).construct_document(node)
            if not _is_json(result):
                raise ConstructorError(
                    None, None, f"a {node.tag} value, which a manifest cannot hold", node.start_mark
                )
            return result

        return value(node)


def _is_json(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    return isinstance(value, (str, *_JSON_KEYS))


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _binary(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    # The API server's JSON form of a byte field is base64 text, which is what the file holds.
    return "".join(str(loader.construct_scalar(node)).split())


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _no_set(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise ConstructorError(
        None, None, "a !!set, which a Kubernetes manifest cannot hold", node.start_mark
    )


_Loader.add_constructor("tag:yaml.org,2002:binary", _binary)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor("tag:yaml.org,2002:set", _no_set)


@dataclass(frozen=True)
class ParsedFile:
    """One file's documents, or what keeps it from being read as manifests."""

    documents: list[Any]
    """Every YAML document in order (None for an empty one); empty when `problem` is set."""
    problem: str | None = None
    """Why the file cannot be checked, said for a user (not UTF-8, a Helm template, bad YAML)."""


def parse_file(path: Path) -> ParsedFile:
    """The documents of the manifest file `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as error:
        return ParsedFile([], f"not readable as UTF-8 text: {error}")
    if "{{" in text and (helm := _HELM_ACTION.search(text)) is not None:
        line = text.count("\n", 0, helm.start()) + 1
        return ParsedFile(
            [],
            f"a Helm template ({helm.group(0)} at line {line}): render it first "
            "(helm template <release> <chart> > rendered.yaml) and check the output",
        )
    try:
        return ParsedFile(list(yaml.load_all(text, Loader=_Loader)))
    except yaml.YAMLError as error:
        hint = (
            "; it holds {{ }} template expressions: if it is a template, render it first"
            if "{{" in text
            else ""
        )
        return ParsedFile([], f"not valid YAML: {_yaml_problem(error)}{hint}")


def parse_files(files: Sequence[Path], *, in_worker: bool = False) -> Iterator[ParsedFile]:
    """`parse_file` of each of `files`, in order; `in_worker` parses them in a process of its
    own (a fresh interpreter: the checking process runs gRPC threads, which a fork would
    copy in whatever state they are), while the caller works on the first files' objects."""
    if not in_worker:
        yield from map(parse_file, files)
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        try:
            yield from worker.map(parse_file, files, chunksize=FILES_PER_TASK)
        finally:
            worker.shutdown(cancel_futures=True)


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(problem).splitlines()[0]
