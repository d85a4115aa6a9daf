"""The policy pack in its own process, started as the CLI starts it, configured with the stack's
pack config and given every subject in the engine's order: Remediate and Analyze per resource,
AnalyzeStack over all of them."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from infra.offline.analyzer import (
    Diagnostic,
    Launcher,
    PolicyPackError,
    PolicyPackProcess,
    Resource,
    load_pack_config,
    parse_pack_config,
)
from infra.offline.check.early import CONFIG_DIR, PACK_DIR
from infra.offline.check.report import CheckError, Finding, Report, ReportWarning, Subject
from infra.offline.launch import StartedPack
from infra.offline.project import PROJECT, PROJECT_ROOT, ROOT_STACK_TYPE


@contextmanager
def policy_pack(
    stack: str,
    *,
    dry_run: bool = True,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    launcher: Launcher = "language-host",
) -> Iterator[PolicyPackProcess]:
    """The pack in its own process, started as the CLI starts it."""
    with starting_policy_pack(
        stack, dry_run=dry_run, config=config, secret_keys=secret_keys, launcher=launcher
    ) as ready:
        yield ready()


@contextmanager
def starting_policy_pack(
    stack: str,
    *,
    dry_run: bool = True,
    config: Mapping[str, str] | None = None,
    secret_keys: Sequence[str] = (),
    launcher: Launcher = "language-host",
    started: StartedPack | None = None,
) -> Iterator[Callable[[], PolicyPackProcess]]:
    """Start the pack in the background (or adopt `started`, from `early.pack_launch(stack)`)
    and yield a call that waits until it serves.

    `dry_run` and the stack `config` are what the engine's ConfigureStack carries: a preview
    (`pulumi preview`, the preview of `pulumi up`) or the update. The pack's process spends
    about a second importing the SDK; the caller's own work (the program under mocks) runs
    meanwhile, on the other core.
    """
    # No tight deadline per call, like the engine: one AnalyzeStack over tens of thousands of
    # manifests is a single long call.
    pack = PolicyPackProcess(
        PACK_DIR,
        project=PROJECT,
        stack=stack,
        dry_run=dry_run,
        config=config,
        config_secret_keys=secret_keys,
        launcher=launcher,
        call_timeout=900,
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        starting = pool.submit(pack.start, started)

        def ready() -> PolicyPackProcess:
            if not starting.done():
                # Configure validates the pack config with it (`analyzer.reconcile_config`):
                # imported while the pack still boots, not once it waits for Configure.
                import jsonschema  # noqa: F401
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
    """The `--policy-pack-config` file: the given one, else the stack's, else None (the pack's
    default levels, for manifests checked without a stack)."""
    if override is not None:
        if not override.is_file():
            raise CheckError(f"policy config {override} does not exist")
        return override
    if stack is None:
        return None
    path = CONFIG_DIR / f"{stack}.json"
    if not path.is_file():
        raise CheckError(
            f"stack {stack!r} has no policy pack config: create policies/config/{stack}.json "
            "(see docs/stacks.md, Adding a stack)"
        )
    return path


class AnalyzeAll(Protocol):
    """Remediate and Analyze for every resource, then AnalyzeStack:
    `PolicyPackProcess.analyze_all`'s shape."""

    def __call__(
        self, resources: Iterable[Resource], *, remediate: bool = True
    ) -> tuple[list[tuple[Resource, list[Diagnostic]]], list[Diagnostic]]: ...


def analyze(
    pack: PolicyPackProcess,
    subjects: Iterable[Subject],
    config: Path | None,
    *,
    analyze_all: AnalyzeAll | None = None,
    remediate_always: bool = False,
) -> Report:
    """Configure the pack, Remediate and Analyze every subject, AnalyzeStack over all of them.

    `subjects` may be a generator still reading input: the pack works on the first resources
    while the next are parsed. `analyze_all` replaces the pack's own (check/shards.py spreads
    the calls over several packs). The engine sends Remediate before every Analyze
    (`remediate_always`, for programs); with no policy set to `remediate` its answer is empty
    (pulumi/pulumi-policy@v1.21.0:sdk/python/lib/pulumi_policy/policy.py
    #_PolicyAnalyzerServicer.Remediate skips every other policy), so over manifests, where it
    would double the calls of tens of thousands of resources, it is sent only when one is.
    """
    info = pack.info()
    try:
        raw = load_pack_config(config) if config is not None else None
        environments = parse_pack_config(raw).environments
        reconciled = pack.configure(raw)
    except (ValueError, OSError) as error:
        raise CheckError(f"{config}: {error}") from error
    warnings: list[ReportWarning] = []
    if environments:
        # Only a Pulumi Cloud backend resolves them (pulumi/pulumi@v3.259.0:pkg/engine/
        # update.go, PolicyEnvResolver); `pulumi policy analyze` drops them.
        warnings.append(
            ReportWarning(
                kind="environments",
                message=f"{_shown(config)} names ESC environments ({', '.join(environments)}): "
                "only Pulumi Cloud resolves them; this check runs the pack without their "
                "environment variables",
            )
        )
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
        remediate = remediate_always or any(
            c.enforcement_level == "remediate" for c in reconciled.values()
        )
        analyzed, stack_diagnostics = (analyze_all or pack.analyze_all)(
            resources(), remediate=remediate
        )
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
        violations=tuple(f for f in findings if not f.exemption and not f.unknown),
        exemptions=tuple(f for f in findings if f.exemption),
        unknowns=tuple(f for f in findings if f.unknown),
        warnings=tuple(warnings),
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
        unknown=diagnostic.unknown_during_preview,
    )


def _shown(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
