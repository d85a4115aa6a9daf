"""Offline policy gate: the safeguard policy pack over a stack, or over plain Kubernetes manifests.

`--stack` runs the Pulumi program under mocks and sends every resource to the pack exactly as
the engine does: the pack runs as its own process (started like `pulumi-analyzer-policy-python`)
and is driven over the Analyzer gRPC protocol (GetAnalyzerInfo, Configure with the stack's
`policies/config/<stack>.json`, Analyze per resource with its inputs, URN, parent and provider,
AnalyzeStack over all of them). `--manifests` does the same for YAML manifests (Helm output,
`kubectl get -o yaml`, hand-written files), each document a resource of its Pulumi type token.

Exit codes: 0 no mandatory violation, 1 at least one, 2 usage or input error (unknown stack,
invalid stack settings or pack config, malformed manifest, the pack failing to start).
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import importlib.metadata
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.offline.analyzer import (
    Diagnostic,
    PolicyPackError,
    PolicyPackProcess,
    Provider,
    Resource,
    load_pack_config,
)
from infra.offline.runtime import PROJECT, PROJECT_ROOT, ROOT_STACK_TYPE, StackRun, run_program
from stacks import SettingsError

PACK_DIR = PROJECT_ROOT / "policies"
CONFIG_DIR = PACK_DIR / "config"
EXEMPTED = "exempted:"
"""How the pack marks a used exemption: an advisory diagnostic whose message starts so."""
MANIFESTS_STACK = "manifests"
"""The stack name in URNs of manifests checked without `--stack`."""

_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class CheckError(Exception):
    """A usage or input problem: the check cannot run (exit code 2)."""


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Subject:
    """A resource to check, and the file it came from (manifests only)."""

    resource: Resource
    source: str | None = None


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One diagnostic of the pack, attached to the resource it is about."""

    urn: str
    type: str
    name: str
    policy: str
    level: str
    message: str
    source: str | None = None

    @property
    def exemption(self) -> bool:
        return self.message.startswith(EXEMPTED)

    def to_json(self) -> dict[str, Any]:
        found = {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "policy": self.policy,
            "level": self.level,
            "message": self.message,
        }
        if self.source is not None:
            found["file"] = self.source
        return found


@dataclass(frozen=True, kw_only=True)
class Report:
    """What the gate found; `exit_code` is 1 when any violation is mandatory."""

    stack: str | None
    manifests: str | None
    pack_name: str
    pack_version: str
    config: str | None
    """The `--policy-pack-config` file used; None means the pack's default levels."""
    resources: int
    violations: tuple[Finding, ...]
    exemptions: tuple[Finding, ...]

    def count(self, level: str) -> int:
        return sum(1 for f in self.violations if f.level == level)

    @property
    def passed(self) -> bool:
        return self.count("mandatory") == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "manifests": self.manifests,
            "pack": {"name": self.pack_name, "version": self.pack_version},
            "config": self.config,
            "resources": self.resources,
            "violations": [f.to_json() for f in self.violations],
            "exemptions": [f.to_json() for f in self.exemptions],
            "summary": {
                "mandatory": self.count("mandatory"),
                "advisory": self.count("advisory"),
                "exemptions": len(self.exemptions),
                "resources_with_violations": len({f.urn for f in self.violations}),
                "passed": self.passed,
            },
        }

    def to_text(self) -> str:
        target = f"stack {self.stack}" if self.manifests is None else f"{self.manifests}"
        config = self.config or "the pack's default levels"
        lines = [
            f"policy check of {target}: pack {self.pack_name}@{self.pack_version}, "
            f"config {config}, {self.resources} resources",
        ]
        for heading, findings in (("", self.violations), ("Exemptions", self.exemptions)):
            if heading and findings:
                lines += ["", f"{heading} (checks skipped on purpose; review the reasons):"]
            for group in _by_resource(findings):
                first = group[0]
                where = f" ({first.source})" if first.source else ""
                lines += ["", f"{first.type} {first.name}{where}"]
                lines += [_indent(f"[{f.level}] {f.policy}: {f.message}") for f in group]
        mandatory, advisory = self.count("mandatory"), self.count("advisory")
        affected = len({f.urn for f in self.violations})
        verdict = "PASSED" if self.passed else "FAILED"
        lines += [
            "",
            f"{verdict}: {mandatory} mandatory, {advisory} advisory violation(s) in {affected} "
            f"resource(s); {len(self.exemptions)} exemption(s); {self.resources} resources "
            "checked",
        ]
        return "\n".join(lines)


def _by_resource(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings grouped per resource in report order; mandatory first within a resource."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.urn, finding.source or ""), []).append(finding)
    order = {"mandatory": 0, "advisory": 1}
    return [
        sorted(group, key=lambda f: (order.get(f.level, 2), f.policy)) for group in groups.values()
    ]


def _indent(text: str) -> str:
    first, *rest = text.splitlines() or [""]
    return "\n".join([f"  {first}", *(f"      {line}" for line in rest)])


# --- running the pack ------------------------------------------------------------------------


@contextmanager
def policy_pack(stack: str) -> Iterator[PolicyPackProcess]:
    """The pack in its own process, started as the engine starts it."""
    with starting_policy_pack(stack) as ready:
        yield ready()


@contextmanager
def starting_policy_pack(stack: str) -> Iterator[Callable[[], PolicyPackProcess]]:
    """Start the pack in the background and yield a call that waits until it serves.

    The pack's process spends about a second importing the SDK; the caller's own work (the
    program under mocks) runs meanwhile, on the other core.
    """
    # No tight deadline per call, like the engine: one AnalyzeStack over tens of thousands of
    # manifests is a single long call.
    pack = PolicyPackProcess(
        PACK_DIR, project=PROJECT, stack=stack, dry_run=False, call_timeout=900
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        starting = pool.submit(pack.start)

        def ready() -> PolicyPackProcess:
            starting.result()
            return pack

        try:
            yield ready
        except PolicyPackError as error:
            raise CheckError(str(error)) from error
        finally:
            # A start still under way must finish (or fail and clean up) before the stop.
            futures.wait([starting])
            pack.stop()


def pack_config_for(stack: str | None, override: Path | None) -> Path | None:
    """The `--policy-pack-config` file: the given one, else the stack's, else None (defaults)."""
    if override is not None:
        if not override.is_file():
            raise CheckError(f"policy config {override} does not exist")
        return override
    if stack is not None and (CONFIG_DIR / f"{stack}.json").is_file():
        return CONFIG_DIR / f"{stack}.json"
    return None


def analyze(pack: PolicyPackProcess, subjects: Iterable[Subject], config: Path | None) -> Report:
    """Configure the pack, Analyze every subject, AnalyzeStack over all of them.

    `subjects` may be a generator still reading input: the pack works on the first resources
    while the next are parsed.
    """
    info = pack.info()
    try:
        pack.configure(load_pack_config(config) if config is not None else None)
    except (ValueError, OSError) as error:
        raise CheckError(f"{config}: {error}") from error
    by_urn: dict[str, Subject] = {}

    def resources() -> Iterator[Resource]:
        for subject in subjects:
            urn = _urn(pack, subject.resource)
            if urn in by_urn:
                raise CheckError(
                    f"two resources have the URN {urn}"
                    + "".join(f" ({s.source})" for s in (by_urn[urn], subject) if s.source)
                )
            by_urn[urn] = subject
            yield subject.resource

    with _collector_paused():
        analyzed, stack_diagnostics = pack.analyze_all(resources())
    findings = [
        _finding(d, _urn(pack, resource), by_urn)
        for resource, diagnostics in analyzed
        for d in diagnostics
    ]
    findings += [_finding(d, d.urn, by_urn) for d in stack_diagnostics]
    return Report(
        stack=None,
        manifests=None,
        pack_name=info.name,
        pack_version=info.version,
        config=_shown(config),
        resources=len(by_urn),
        violations=tuple(f for f in findings if not f.exemption),
        exemptions=tuple(f for f in findings if f.exemption),
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Without the cycle collector while tens of thousands of manifests stay alive: it would
    rescan all of them again and again (reference counting frees what the check drops)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _urn(pack: PolicyPackProcess, resource: Resource) -> str:
    return (
        resource.urn or f"urn:pulumi:{pack.stack}::{pack.project}::{resource.type}::{resource.name}"
    )


def _finding(diagnostic: Diagnostic, urn: str, by_urn: Mapping[str, Subject]) -> Finding:
    subject = by_urn.get(urn)
    resource = subject.resource if subject is not None else None
    return Finding(
        urn=urn,
        type=resource.type if resource is not None else ROOT_STACK_TYPE,
        name=resource.name if resource is not None else "(stack)",
        policy=diagnostic.policy_name,
        level=diagnostic.enforcement_level,
        message=diagnostic.message,
        source=subject.source if subject is not None else None,
    )


def _shown(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


# --- stacks and programs ---------------------------------------------------------------------


@functools.cache
def default_provider(package: str, stack: str) -> Provider:
    """The provider the engine creates for `package` when the program names none."""
    try:
        version = importlib.metadata.version(f"pulumi_{package}")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    name = f"default_{version.replace('.', '_')}" if version else "default"
    token = f"pulumi:providers:{package}"
    return Provider(
        type=token,
        name=name,
        urn=f"urn:pulumi:{stack}::{PROJECT}::{token}::{name}",
        properties={"version": version} if version else {},
    )


def subjects_of_run(run: StackRun, stack: str) -> list[Subject]:
    """What the engine analyzes for a run: the root stack, the default providers and every
    registered resource with its inputs, URN, parent and provider."""
    recorded = {r.urn: r for r in run.resources}
    roots = {r.parent for r in run.resources if r.parent.split("::")[2:3] == [ROOT_STACK_TYPE]}
    subjects = [
        Subject(resource=Resource(type=ROOT_STACK_TYPE, name=urn.rsplit("::", 1)[1], urn=urn))
        for urn in sorted(roots)
    ]
    providers: dict[str, Provider] = {}
    resources: list[Subject] = []
    for r in run.resources:
        provider: Provider | None = None
        if r.custom and not r.type.startswith("pulumi:providers:"):
            if r.provider:
                explicit = recorded.get(r.provider.rsplit("::", 1)[0])
                if explicit is not None:
                    provider = Provider(
                        type=explicit.type,
                        name=explicit.name,
                        urn=explicit.urn,
                        properties=explicit.inputs,
                    )
            else:
                provider = providers.setdefault(
                    r.type.split(":", 1)[0], default_provider(r.type.split(":", 1)[0], stack)
                )
        resource = Resource(
            type=r.type,
            name=r.name,
            urn=r.urn,
            properties=r.inputs,
            parent=r.parent,
            provider=provider,
            dependencies=r.dependencies,
            property_dependencies=r.property_dependencies,
        )
        resources.append(Subject(resource=resource))
    for provider in providers.values():
        subjects.append(
            Subject(
                resource=Resource(
                    type=provider.type,
                    name=provider.name,
                    urn=provider.urn,
                    properties=provider.properties,
                )
            )
        )
    return subjects + resources


def check_program(
    program: Callable[[], None],
    *,
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    pack_config: Path | None = None,
    pack: PolicyPackProcess | None = None,
) -> Report:
    """Run `program` under mocks with `config` and check what it registers.

    The one path for the project's stacks and for any other program (the tests' fixtures): the
    pack is started for the call unless a running one is given.
    """
    if pack is not None:
        subjects = _program_subjects(program, stack, config, secret_keys)
        return _with(analyze(pack, subjects, pack_config), stack=stack)
    with starting_policy_pack(stack) as ready:
        subjects = _program_subjects(program, stack, config, secret_keys)
        return _with(analyze(ready(), subjects, pack_config), stack=stack)


def _program_subjects(
    program: Callable[[], None],
    stack: str,
    config: Mapping[str, str] | None,
    secret_keys: Sequence[str],
) -> list[Subject]:
    try:
        run = run_program(
            program, stack=stack, config=dict(config or {}), secret_keys=list(secret_keys)
        )
    except SettingsError:
        raise
    except ValueError as error:
        # Components validate their args before registering anything: a value from the stack
        # file they refuse is a configuration error, not a crash.
        raise CheckError(f"the program refused its configuration: {error}") from error
    return subjects_of_run(run, stack)


def check_stack(
    stack: str, *, pack_config: Path | None = None, pack: PolicyPackProcess | None = None
) -> Report:
    """Check the project's program for `stack`, with its `Pulumi.<stack>.yaml` settings and its
    pack config (or `pack_config`)."""
    from infra.offline.runtime import stack_config

    def program() -> None:
        # Imported here, inside the run, so that the pack boots while the project's modules
        # (pulumi_kubernetes alone takes half a second) load.
        from infra.program import run
        from stacks import load_settings

        run(load_settings())

    _require_stack(stack)
    config, secret_keys = stack_config(stack)
    return check_program(
        program,
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        pack_config=pack_config_for(stack, pack_config),
        pack=pack,
    )


def _require_stack(stack: str) -> None:
    if _STACK_NAME.match(stack) and (PROJECT_ROOT / f"Pulumi.{stack}.yaml").is_file():
        return
    known = sorted(
        p.name[len("Pulumi.") : -len(".yaml")] for p in PROJECT_ROOT.glob("Pulumi.*.yaml")
    )
    raise CheckError(
        f"no stack {stack!r}: there is no Pulumi.{stack}.yaml (stacks: {', '.join(known)})"
    )


def _with(report: Report, **changes: Any) -> Report:
    fields = {name: getattr(report, name) for name in Report.__dataclass_fields__}
    return Report(**{**fields, **changes})


# --- manifests -------------------------------------------------------------------------------


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
        _require_stack(stack)
    subjects = iter_manifests(path, stack or MANIFESTS_STACK)
    config = pack_config_for(stack, pack_config)
    if pack is None:
        with policy_pack(stack or MANIFESTS_STACK) as started:
            report = analyze(started, subjects, config)
    else:
        report = analyze(pack, subjects, config)
    return _with(report, stack=stack, manifests=str(path))


# --- command line ----------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", help="dev, staging or production: run that stack's program")
    parser.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="check the Kubernetes YAML files under DIR (or one file) instead of a program",
    )
    parser.add_argument(
        "--policy-config",
        type=Path,
        metavar="FILE",
        help="a --policy-pack-config file (default: policies/config/<stack>.json with --stack, "
        "else every policy at its default level)",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report")
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    if args.stack is None and args.manifests is None:
        print("check needs --stack NAME or --manifests DIR", file=sys.stderr)
        return 2
    try:
        if args.manifests is not None:
            report = check_manifests(
                args.manifests, stack=args.stack, pack_config=args.policy_config
            )
        else:
            report = check_stack(args.stack, pack_config=args.policy_config)
    except CheckError as error:
        print(f"check: {error}", file=sys.stderr)
        return 2
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return report.exit_code
