"""Plain Kubernetes manifests (Helm output, `kubectl get -o yaml`, hand-written files, a whole
repository) as subjects of the check, each object a resource of its Pulumi type token.

What real input holds besides objects is handled, not refused: `kind: List` and typed lists
(`ConfigMapList`, `RoleBindingList`) are expanded; an object defined in two files (the HA and
plain variants of one install) is checked in both and reported as a warning naming both files;
documents that are not Kubernetes objects (the render's Docker and random files, CI workflows)
are skipped and named. Helm templates cannot be checked before they are rendered: they stop the
check (exit 2) with the `helm template` step to run first.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.offline.analyzer import PolicyPackProcess, Provider, Resource
from infra.offline.check import shards
from infra.offline.check.early import MANIFESTS_STACK, manifest_files, packs_for_manifests
from infra.offline.check.pack import analyze, pack_config_for
from infra.offline.check.report import CheckError, Report, ReportWarning, Subject
from infra.offline.check.yaml_files import ParsedFile, parse_files
from infra.offline.launch import StartedPack
from infra.offline.project import PROJECT
from infra.offline.providers import default_provider
from infra.offline.stack_files import require_stack

CHART_FILE = "Chart.yaml"


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


def load_manifests(path: Path, stack: str = MANIFESTS_STACK) -> list[Subject]:
    """Every Kubernetes object under `path` as a resource of its type token, its properties the
    manifest (see `ManifestReader` for what is expanded, skipped or refused)."""
    return list(ManifestReader(path, stack))


def iter_manifests(path: Path, stack: str = MANIFESTS_STACK) -> Iterator[Subject]:
    """`load_manifests`, one file at a time."""
    return iter(ManifestReader(path, stack))


@dataclass(frozen=True)
class _Seen:
    source: str
    properties: Any
    urn: str


class ManifestReader:
    """The Kubernetes objects under a path, read one file at a time.

    Iterating yields each object as a Subject. Empty documents are skipped, `kind: List` and
    typed lists (`ConfigMapList`: items without apiVersion and kind get the list's) are
    expanded. Once iteration is over, `warnings` names the objects defined more than once
    (each is checked, under a URN of its own) and the documents skipped as not Kubernetes
    objects (no apiVersion and no kind). Anything else that is not a Kubernetes object, and
    any Helm template, raises CheckError naming the file, the document (1-based) and the
    field, after the last file; nothing more is yielded once a problem is found.
    """

    def __init__(
        self, path: Path, stack: str = MANIFESTS_STACK, *, parse_in_worker: bool = False
    ) -> None:
        self.path = path
        self.stack = stack
        self.parse_in_worker = parse_in_worker
        """Parse the YAML in a process of its own (see `yaml_files.parse_files`)."""
        self.warnings: list[ReportWarning] = []
        self._problems = _Problems()
        self._seen: dict[tuple[str, str, str, str], list[_Seen]] = {}
        self._urns: set[str] = set()
        self._skipped: list[str] = []
        self._rendered: list[str] = []

    def __iter__(self) -> Iterator[Subject]:
        provider = default_provider("kubernetes", self.stack)
        root = self.path if self.path.is_dir() else self.path.parent
        files = manifest_files(self.path)
        charts = _chart_roots(self.path, files)
        for chart in charts:
            shown = str(chart.relative_to(root)) if chart != root else str(chart)
            self._problems.add(
                shown,
                f"a Helm chart ({CHART_FILE}): its templates are not manifests yet; render "
                f"them first (helm template <release> {chart} > rendered.yaml) and check the "
                "output",
            )
        checked = 0
        files = [file for file in files if not any(chart in file.parents for chart in charts)]
        parsed_files = parse_files(files, in_worker=self.parse_in_worker)
        for file, parsed in zip(files, parsed_files, strict=True):
            shown = str(file.relative_to(root)) if file != self.path else str(file)
            for subject in self._file_subjects(parsed, shown, provider):
                checked += 1
                if not self._problems.found:
                    yield subject
        if not self._problems.found and checked == 0:
            self._problems.add(str(self.path), "holds no Kubernetes objects (apiVersion, kind)")
        if self._problems.found:
            raise CheckError("malformed manifests:\n  " + "\n  ".join(self._problems.found))
        self._finish_warnings()

    def _file_subjects(
        self, parsed: ParsedFile, shown: str, provider: Provider
    ) -> Iterator[Subject]:
        if parsed.problem is not None:
            self._problems.add(shown, parsed.problem)
            return
        documents = parsed.documents
        for index, document in enumerate(documents, start=1):
            if document is None:
                continue
            where = f"{shown}#{index}"
            if isinstance(document, Mapping) and not {"apiVersion", "kind"} & document.keys():
                rendered = isinstance(document.get("type"), str) and "inputs" in document
                (self._rendered if rendered else self._skipped).append(where)
                continue
            for item_where, manifest in self._objects(document, where):
                subject = self._subject(manifest, item_where, provider)
                if subject is not None:
                    yield subject

    def _objects(self, document: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        if not isinstance(document, Mapping):
            self._problems.add(
                where, f"is a {_kind_of_value(document)}, not a Kubernetes object (a mapping)"
            )
            return
        kind, items = document.get("kind"), document.get("items")
        if not (isinstance(kind, str) and kind.endswith("List") and isinstance(items, list)):
            yield where, document
            return
        # A typed list (ConfigMapList) as the API returns it may leave out its items' kind.
        item_kind = None if kind == "List" else kind.removesuffix("List")
        for index, item in enumerate(items):
            item_where = f"{where} items[{index}]"
            if not isinstance(item, Mapping):
                self._problems.add(item_where, f"is a {_kind_of_value(item)}, not a mapping")
            elif item_kind is not None and "kind" not in item and "apiVersion" not in item:
                inherited = {"apiVersion": document.get("apiVersion"), "kind": item_kind}
                yield item_where, {**inherited, **item}
            else:
                yield item_where, item

    def _subject(
        self, manifest: Mapping[str, Any], where: str, provider: Provider
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
            self._problems.add(where, f"{', '.join(missing)} missing or not a string")
            return None
        assert isinstance(metadata, Mapping) and isinstance(name, str)
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        namespace = metadata.get("namespace")
        namespace = namespace if isinstance(namespace, str) else ""
        qualified = f"{namespace}/{name}" if namespace else name
        token = type_token(api_version, kind)
        urn = f"urn:pulumi:{self.stack}::{PROJECT}::{token}::{qualified}"
        identity = (api_version.rpartition("/")[0], kind, namespace, name)
        earlier = self._seen.setdefault(identity, [])
        if urn in self._urns:
            # The engine would refuse a second resource of one URN: this one gets its own, so
            # both are checked and their findings stay apart.
            urn = f"{urn}@{where}"
        self._urns.add(urn)
        earlier.append(_Seen(where, manifest, urn))
        resource = Resource(
            type=token, name=qualified, properties=manifest, urn=urn, provider=provider
        )
        return Subject(resource=resource, source=where)

    def _finish_warnings(self) -> None:
        for (_, kind, namespace, name), seen in self._seen.items():
            if len(seen) < 2:
                continue
            qualified = f"{namespace}/{name}" if namespace else name
            same = all(s.properties == seen[0].properties for s in seen[1:])
            places = ", ".join(s.source for s in seen[:-1]) + f" and {seen[-1].source}"
            self.warnings.append(
                ReportWarning(
                    kind="duplicate",
                    message=(
                        f"{kind} {qualified} is defined {_times(len(seen))}, "
                        f"{'identically' if same else 'differently'}: {places}; a cluster "
                        "keeps one of them, each was checked"
                    ),
                    files=tuple(s.source for s in seen),
                )
            )
        if self._rendered:
            self.warnings.append(
                ReportWarning(
                    kind="skipped",
                    message=(
                        f"{_count(len(self._rendered), 'rendered resource')} not checked: "
                        "`python -m infra render` writes Docker and random resources as their "
                        "inputs, not as manifests; `python -m infra check --stack <stack>` "
                        "checks them"
                    ),
                    files=tuple(self._rendered),
                )
            )
        if self._skipped:
            self.warnings.append(
                ReportWarning(
                    kind="skipped",
                    message=(
                        f"{_count(len(self._skipped), 'document')} not checked: not Kubernetes "
                        "objects (no apiVersion and no kind)"
                    ),
                    files=tuple(self._skipped),
                )
            )


def _times(count: int) -> str:
    return {2: "twice", 3: "three times"}.get(count, f"{count} times")


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _chart_roots(path: Path, files: list[Path]) -> list[Path]:
    """The directories at or below `path` that are Helm charts (they hold a Chart.yaml),
    outermost first; a subchart is part of its parent's chart."""
    candidates = sorted({f.parent for f in files if f.name == CHART_FILE})
    if path.is_file():
        candidates = [p for p in path.parents if (p / CHART_FILE).is_file()][:1]
    roots: list[Path] = []
    for candidate in candidates:
        if not any(root in candidate.parents for root in roots):
            roots.append(candidate)
    return roots


def _kind_of_value(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


@contextmanager
def _read_ahead(subjects: Iterable[Subject]) -> Iterator[Iterator[Subject]]:
    """`subjects`, read by a thread of its own from now on; the reader's error reaches the
    consumer where it would have come. Reading stops when the consumer is done."""
    ahead: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()

    def read() -> None:
        try:
            for subject in subjects:
                if stop.is_set():
                    return
                ahead.put(subject)
        except BaseException as error:  # handed to the consumer
            ahead.put(_Failed(error))
        ahead.put(_END)

    def consume() -> Iterator[Subject]:
        while (item := ahead.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield consume()
    finally:
        stop.set()
        reader.join()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


def check_manifests(
    path: Path,
    *,
    stack: str | None = None,
    pack_config: Path | None = None,
    pack: PolicyPackProcess | None = None,
    started: Sequence[StartedPack] | None = None,
) -> Report:
    """Check the manifests under `path` with `pack_config` (or `stack`'s, or the defaults), on
    `pack`, or on the packs `started` by `early.packs_for_manifests(path, stack)`, or on packs
    started here as that does."""
    if stack is not None:
        require_stack(stack)
    config = pack_config_for(stack, pack_config)
    if pack is not None:
        reader = ManifestReader(path, stack or MANIFESTS_STACK)
        report = analyze(pack, reader, config)
    else:
        with ExitStack() as started_here:
            if started is None:
                started = started_here.enter_context(packs_for_manifests(path, stack))
            report, reader = _check_on(started, path, stack, config)
    return dataclasses.replace(
        report,
        stack=stack,
        manifests=str(path),
        warnings=(*report.warnings, *reader.warnings),
    )


def _check_on(
    started: Sequence[StartedPack], path: Path, stack: str | None, config: Path | None
) -> tuple[Report, ManifestReader]:
    # Where one pack is not enough, neither is one process to read the files.
    reader = ManifestReader(path, stack or MANIFESTS_STACK, parse_in_worker=len(started) > 1)
    # The files are read while the packs get ready, not after.
    with (
        shards.starting_policy_packs(stack or MANIFESTS_STACK, started) as ready,
        _read_ahead(reader) as subjects,
    ):
        packs = ready()
        spread = None
        if len(packs) > 1:
            *analyzing, stack_pack = packs
            spread = shards.spread(analyzing, config, stack_pack)
        return analyze(packs[0], subjects, config, analyze_all=spread), reader
