"""`python -m infra export --stack NAME [--out FILE]`: the stack as `pulumi stack export
--show-secrets` writes it after a `pulumi up`, so that a user with the Pulumi CLI (3.249 or
newer) checks it with the real engine and no backend:

    pulumi policy analyze --file FILE --policy-pack policies \\
        --policy-pack-config policies/config/NAME.json

The program runs under mocks as the update does (every value known): generated passwords, ids
and image digests are the offline tool's deterministic placeholders, never real values, and
values the providers read back from a live cluster or daemon (status, uids, container
hostnames) are absent. No unknown value is ever written: `pulumi policy analyze` would treat it
as unknown and report "can't run policy" notes instead of verdicts.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.offline import providers
from infra.offline.output import emit
from infra.offline.runtime import ROOT_STACK_TYPE, Recorded, StackRun, run_stack
from infra.offline.stack_files import require_stack
from infra.offline.wire import SECRET_SIG, SIG_KEY, UNKNOWN
from stacks import SettingsError

DEPLOYMENT_VERSION = 3
"""`pulumi stack export` writes version 3 unless the state uses version-4 features
(pulumi/pulumi@v3.259.0:sdk/go/common/apitype/core.go#DeploymentSchemaVersionCurrent)."""


class ExportError(ValueError):
    """The run cannot be written as a deployment (it holds a value not known yet)."""


def _value(value: Any, where: str) -> Any:
    """A wire-format value as the state file stores it (pulumi/pulumi@v3.259.0:
    pkg/resource/stack/deployment.go#SerializePropertyValue): a secret as
    `{sig: secret, plaintext: <JSON text of its value>}`, integral numbers as integers."""
    if value == UNKNOWN:
        raise ExportError(f"{where} is not known: an export is the state after an update")
    if providers.is_secret(value):
        inner = _value(value["value"], where)
        return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(inner, sort_keys=True)}
    if isinstance(value, dict):
        return {k: _value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _default_providers(run: StackRun) -> dict[str, dict[str, Any]]:
    """One default provider per package the program uses without an explicit one
    (providers.default_provider): no parent, inputs = its config, `version` and `__internal`
    (pulumi/pulumi@v3.259.0:pkg/resource/deploy/providers/registry.go#SetProviderVersion),
    outputs = the inputs without `__internal` (registry.go#FilterProviderConfig), and a UUID
    for its id."""
    stack = run.root_urn.split("::")[0].removeprefix("urn:pulumi:")
    project = run.root_urn.split("::")[1]
    found: dict[str, dict[str, Any]] = {}
    for resource in run.resources:
        package = resource.type.split(":", 1)[0]
        if not resource.custom or resource.provider or package == "pulumi" or package in found:
            continue
        provider = providers.default_provider(package, stack, run.config, project)
        found[package] = {
            "urn": provider.urn,
            "custom": True,
            "id": providers.uuid_of(provider.urn),
            "type": provider.type,
            "inputs": {**provider.properties, "__internal": {}},
            "outputs": dict(provider.properties),
        }
    return found


def _kubernetes_outputs(resource: Recorded) -> dict[str, Any]:
    # The state a create leaves: the object plus the provider's own keys
    # (pulumi/pulumi-kubernetes@v4.32.0:provider/pkg/provider/provider.go#checkpointObject).
    # A read gets no Check: its `__inputs` are the live object's, which Read copies into them
    # when the `get` named none (#(*kubeProvider).Read, readFromCluster).
    checked = resource.checked if resource.checked is not None else resource.outputs
    return {
        **resource.outputs,
        "__inputs": checked,
        "__initialApiVersion": providers.plain(checked.get("apiVersion", "")),
        "__fieldManager": f"pulumi-kubernetes-{providers.digest(resource.urn)[:8]}",
    }


def _resource(
    resource: Recorded, provider_refs: Mapping[str, str], explicit: Mapping[str, str]
) -> dict[str, Any]:
    where = resource.urn
    entry: dict[str, Any] = {"urn": resource.urn, "custom": resource.custom}
    if resource.custom:
        entry["id"] = resource.id
    entry["type"] = resource.type
    inputs = resource.checked if resource.checked is not None else resource.inputs
    entry["inputs"] = _value(inputs, f"{where} input")
    # A read keeps the properties its `get` sent as inputs and the provider's answer as
    # outputs (pulumi/pulumi@v3.259.0:pkg/resource/deploy/step.go#(*ReadStep).Apply).
    outputs = (
        _kubernetes_outputs(resource)
        if resource.type.startswith("kubernetes:")
        else resource.outputs
    )
    entry["outputs"] = _value(outputs, f"{where} output")
    if resource.parent:
        entry["parent"] = resource.parent
    if resource.external:
        entry["external"] = True
    options = resource.options
    if options.protect:
        entry["protect"] = True
    if resource.dependencies:
        entry["dependencies"] = list(resource.dependencies)
    if resource.custom and not resource.type.startswith("pulumi:providers:"):
        if resource.provider:
            entry["provider"] = explicit.get(
                resource.provider.rsplit("::", 1)[0], resource.provider
            )
        else:
            entry["provider"] = provider_refs[resource.type.split(":", 1)[0]]
    dependencies = {k: list(v) for k, v in resource.property_dependencies.items() if v}
    if dependencies:
        entry["propertyDependencies"] = dependencies
    if options.additional_secret_outputs:
        entry["additionalSecretOutputs"] = list(options.additional_secret_outputs)
    if options.aliases:
        entry["aliases"] = list(options.aliases)
    if options.custom_timeouts:
        entry["customTimeouts"] = dict(options.custom_timeouts)
    if options.ignore_changes:
        entry["ignoreChanges"] = list(options.ignore_changes)
    return entry


def export(run: StackRun) -> dict[str, Any]:
    """The run as an untyped deployment `{"version": 3, "deployment": {...}}`
    (pulumi/pulumi@v3.259.0:sdk/go/common/apitype/core.go#DeploymentV3, #ResourceV3): the root
    stack first, then the providers, then every resource after its parent and everything it
    depends on (the order Snapshot.VerifyIntegrity requires, pkg/resource/deploy/
    snapshot.go)."""
    if run.preview:
        raise ExportError(
            "an export is the state after an update: run the program with preview off"
        )
    defaults = _default_providers(run)
    refs = {package: f"{p['urn']}::{p['id']}" for package, p in defaults.items()}
    explicit = {
        r.urn: f"{r.urn}::{r.id}" for r in run.resources if r.type.startswith("pulumi:providers:")
    }
    root = {
        "urn": run.root_urn,
        "custom": False,
        "type": ROOT_STACK_TYPE,
        "outputs": _value(run.wire_outputs, "stack output"),
    }
    listed = [r for r in run.resources if r.type.startswith("pulumi:providers:")]
    listed += [r for r in run.resources if not r.type.startswith("pulumi:providers:")]
    version = importlib.metadata.version("pulumi")
    return {
        "version": DEPLOYMENT_VERSION,
        "deployment": {
            "manifest": {
                "time": datetime.datetime.now(datetime.UTC).isoformat(),
                # ManifestV1.NewMagic: the hex SHA-256 of the version string.
                "magic": hashlib.sha256(version.encode()).hexdigest(),
                "version": version,
            },
            "resources": [
                root,
                *defaults.values(),
                *(_resource(r, refs, explicit) for r in _ordered(listed)),
            ],
        },
    }


def _ordered(resources: list[Recorded]) -> list[Recorded]:
    """`resources` with each after its parent and its dependencies (registration order already
    is, except where a program passes a resource registered later as a dependency)."""
    by_urn = {r.urn: r for r in resources}
    placed: dict[str, Recorded] = {}

    def place(resource: Recorded, path: tuple[str, ...]) -> None:
        if resource.urn in placed:
            return
        if resource.urn in path:
            raise ExportError(f"{resource.urn} depends on itself through {' -> '.join(path)}")
        before = [resource.parent, *resource.dependencies]
        before += [u for urns in resource.property_dependencies.values() for u in urns]
        for urn in before:
            if urn in by_urn:
                place(by_urn[urn], (*path, resource.urn))
        placed[resource.urn] = resource

    for resource in resources:
        place(resource, ())
    return list(placed.values())


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="dev, staging or production")
    parser.add_argument(
        "--out", type=Path, default=None, help="the file to write (default: standard output)"
    )
    parser.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    require_stack(args.stack)
    try:
        document = export(run_stack(args.stack))
    except (SettingsError, ExportError) as error:
        prefix = "export: " if isinstance(error, ExportError) else ""
        emit(f"{prefix}{error}", sys.stderr)
        return 2
    text = json.dumps(document, indent=4, sort_keys=False)
    if args.out is None:
        emit(text)
    else:
        args.out.write_text(text + "\n")
        resources = len(document["deployment"]["resources"])
        emit(f"wrote {args.out}: {resources} resources", sys.stderr)
    return 0
