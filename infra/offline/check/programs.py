"""A Pulumi program under mocks, as the engine would analyze it: the root stack, the default
providers and every registered resource with its inputs, URN, parent and provider; for the
project's stacks, with their `Pulumi.<stack>.yaml` settings and pack config."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from infra.offline.analyzer import PolicyPackProcess, Provider, Resource
from infra.offline.check.pack import CONFIG_DIR, analyze, pack_config_for, starting_policy_pack
from infra.offline.check.report import CheckError, Report, ReportWarning, Subject
from infra.offline.providers import default_provider
from infra.offline.runtime import ROOT_STACK_TYPE, StackRun, run_program
from infra.offline.stack_files import require_stack
from stacks import SettingsError


def subjects_of_run(run: StackRun, stack: str) -> list[Subject]:
    """What the engine analyzes for a run: the root stack, the default providers and every
    registered resource, each with its checked inputs (Remediate, Analyze), its outputs
    (AnalyzeStack), URN, parent, options and provider.

    Reads (a `get`) are left out: the engine analyzes a resource when its registration is
    checked, which a read step never is, and its AnalyzeStack takes the deployment's `news`,
    where the step executor never puts a read (it keeps them in `reads`)
    (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step_generator.go#GenerateReadSteps,
    #AnalyzeResources; step_executor.go#continueExecuteStep). An export still holds them, marked
    external, and `pulumi policy analyze --file` checks them as any resource of the state.
    """
    recorded = {r.urn: r for r in run.resources}
    roots = {r.parent for r in run.resources if r.parent.split("::")[2:3] == [ROOT_STACK_TYPE]}
    if run.root_urn:
        roots.add(run.root_urn)
    subjects = [
        Subject(
            resource=Resource(
                type=ROOT_STACK_TYPE,
                name=urn.rsplit("::", 1)[1],
                urn=urn,
                outputs=run.wire_outputs if urn == run.root_urn else {},
            )
        )
        for urn in sorted(roots)
    ]
    providers: dict[str, Provider] = {}
    resources: list[Subject] = []
    for r in run.resources:
        if r.external:
            continue
        provider: Provider | None = None
        if r.custom and not r.type.startswith("pulumi:providers:"):
            package = r.type.split(":", 1)[0]
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
                    package, default_provider(package, stack, run.config)
                )
        resource = Resource(
            type=r.type,
            name=r.name,
            urn=r.urn,
            properties=r.checked if r.checked is not None else r.inputs,
            outputs=r.outputs,
            parent=r.parent,
            provider=provider,
            options=r.options,
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
                    outputs=provider.properties,
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
    preview: bool = True,
) -> Report:
    """Run `program` under mocks with `config` and check what it registers.

    `preview` (the default) checks it as a first `pulumi preview` does, with the values the
    engine does not know yet unknown and the pack told it is a dry run; False checks it as the
    update of `pulumi up`, every value known. The one path for the project's stacks and for any
    other program (the tests' fixtures): the pack is started for the call unless a running one
    is given.
    """
    if pack is not None:
        subjects, warnings = _program_subjects(program, stack, config, secret_keys, preview)
        report = analyze(pack, subjects, pack_config, remediate_always=True)
    else:
        with starting_policy_pack(
            stack, dry_run=preview, config=config, secret_keys=secret_keys
        ) as ready:
            subjects, warnings = _program_subjects(program, stack, config, secret_keys, preview)
            report = analyze(ready(), subjects, pack_config, remediate_always=True)
    return dataclasses.replace(report, stack=stack, warnings=(*report.warnings, *warnings))


def _program_subjects(
    program: Callable[[], None],
    stack: str,
    config: Mapping[str, str] | None,
    secret_keys: Sequence[str],
    preview: bool,
) -> tuple[list[Subject], tuple[ReportWarning, ...]]:
    """What the engine would analyze, the warnings the program logged, and one for each read:
    what it reads must exist, which no offline run can see."""
    try:
        run = run_program(
            program,
            stack=stack,
            config=dict(config or {}),
            secret_keys=list(secret_keys),
            preview=preview,
        )
    except SettingsError:
        raise
    except ValueError as error:
        # Components validate their args before registering anything: a value from the stack
        # file they refuse is a configuration error, not a crash.
        raise CheckError(f"the program refused its configuration: {error}") from error
    found = [ReportWarning(kind="program", message=warning) for warning in run.warnings]
    found += [
        ReportWarning(
            kind="read",
            message=f"{r.type} {r.id!r} is read from the cluster, not created (a `get`, "
            f"{r.urn}); this check sees no cluster: it must exist before `pulumi up`, whose "
            f"preview fails at once without it (\"resource '{r.id}' does not exist\")",
        )
        for r in run.resources
        if r.external
    ]
    return subjects_of_run(run, stack), tuple(found)


def check_stack(
    stack: str,
    *,
    pack_config: Path | None = None,
    pack: PolicyPackProcess | None = None,
    preview: bool = True,
) -> Report:
    """Check the project's program for `stack`, with its `Pulumi.<stack>.yaml` settings and its
    pack config (or `pack_config`), as a first preview (or, `preview=False`, as the update)."""
    from infra.offline.runtime import stack_config

    def program() -> None:
        # Imported here, inside the run, so that the pack boots while the project's modules
        # (pulumi_kubernetes alone takes half a second) load.
        from infra.program import run
        from stacks import load_settings

        run(load_settings())

    require_stack(stack)
    config, secret_keys = stack_config(stack)
    return check_program(
        program,
        stack=stack,
        config=config,
        secret_keys=secret_keys,
        # A stack without its pack config is refused by its settings, with every other problem
        # they have; analyze() opens the file only after the program ran.
        pack_config=pack_config_for(None, pack_config) or CONFIG_DIR / f"{stack}.json",
        pack=pack,
        preview=preview,
    )
