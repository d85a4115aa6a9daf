"""Manifest files parsed into JSON values, in this process or, for large inputs, in a process
of its own: PyYAML's parser is C but its resolver and constructor are Python, about a third of
a millisecond per object, which the checking process would otherwise spend under its GIL while
the packs wait for their next calls. A worker process imports only this module (and PyYAML).
"""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Helm's built-in objects and the functions only Helm has. Other tools template strings with
# `{{ }}` too (Prometheus rules: `{{ $labels.pod }}`, Grafana: `{{instance}}`, Argo CD
# notifications: `{{.app.metadata.name}}`); those are values, and stay checkable.
_HELM_ACTION = re.compile(
    r"\{\{-?[^{}]*?(?:\$?\.(?:Values|Release|Chart|Capabilities|Files|Template)\b"
    r"|\b(?:include|tpl|required|lookup|toYaml|fromYaml|toJson)\b)[^{}]*?-?\}\}"
)

FILES_PER_TASK = 32
"""Files a worker parses per round trip: enough to make the pickling of tasks negligible."""


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as the Kubernetes API reads it, straight into JSON values: an unquoted date stays
    the string it is, `!!binary` stays its base64 text."""


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
    raise yaml.constructor.ConstructorError(
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
