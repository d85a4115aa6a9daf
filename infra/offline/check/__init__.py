"""Offline policy gate: the safeguard policy pack over a stack, or over plain Kubernetes manifests.

`--stack` runs the Pulumi program under mocks as a first preview (or, `preview=False`, as the
update) and sends every resource it registers to the pack as the engine does (what it only
reads is a warning: it must exist before `pulumi up`): the pack runs as its own
process, started as the CLI starts it, and is driven over the Analyzer gRPC protocol in the
engine's order (ConfigureStack, GetPluginInfo, GetAnalyzerInfo, Configure with the stack's
`policies/config/<stack>.json`, Remediate and Analyze per resource with its checked inputs,
URN, parent, options and provider, AnalyzeStack over their outputs, Cancel). `--manifests` does
the same for YAML manifests (Helm output, `kubectl get -o yaml`, hand-written files, a
repository), each object a resource of its Pulumi type token; objects defined twice and
documents that are not Kubernetes objects are warnings.

Exit codes: 0 no mandatory violation, 1 at least one, 2 usage or input error (unknown stack,
invalid stack settings or pack config, malformed manifest, a Helm template, the pack failing
to start).

The names below are imported from their submodule on first use (PEP 562), so that
`--manifests` never imports what only `--stack` needs (the program and its settings).
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULE = {
    **dict.fromkeys(
        ("ManifestReader", "check_manifests", "iter_manifests", "load_manifests", "type_token"),
        "manifests",
    ),
    **dict.fromkeys(
        ("CONFIG_DIR", "MANIFESTS_STACK", "PACK_DIR", "manifest_files", "packs_for_manifests"),
        "early",
    ),
    **dict.fromkeys(
        (
            "analyze",
            "pack_config_for",
            "policy_pack",
            "starting_policy_pack",
        ),
        "pack",
    ),
    **dict.fromkeys(
        ("check_program", "check_stack", "default_provider", "subjects_of_run"), "programs"
    ),
    **dict.fromkeys(
        ("EXEMPTED", "CheckError", "Finding", "Report", "ReportWarning", "Subject"), "report"
    ),
}

__all__ = sorted(_SUBMODULE)


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
