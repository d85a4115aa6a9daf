"""A policy pack that reports what it receives: for each Analyze and each AnalyzeStack resource,
one advisory finding whose message is JSON of the properties it got (unknowns as the engine's
sentinels, secrets unwrapped as the SDK unwraps them), plus how its process was started. Tests
use it to see exactly what the offline gate sends, through the real SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PACK = """
import json
import os
import sys

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)


def plain(value):
    if type(value).__name__ in ("_DictProxy", "_ListProxy"):
        value = value["__target"]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def process():
    return {
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "env": {k: v for k, v in os.environ.items() if k.startswith("PULUMI_")},
        "dry_run": pulumi.runtime.is_dry_run(),
    }


def resource(args, report):
    report(json.dumps({
        "call": "Analyze",
        "type": args.resource_type,
        "name": args.name,
        "props": plain(args.props),
        "process": process(),
    }))


def stack(args, report):
    for r in args.resources:
        report(json.dumps({
            "call": "AnalyzeStack",
            "type": r.resource_type,
            "name": r.name,
            "props": plain(r.props),
        }), r.urn)


PolicyPack(
    name="probe",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[
        ResourceValidationPolicy(name="probe-resource", description="d", validate=resource),
        StackValidationPolicy(name="probe-stack", description="d", validate=stack),
    ],
)
"""


def write_probe_pack(directory: Path, *, version: str = "9.9.9") -> Path:
    """The probe pack in `directory` (created), its PulumiPolicy.yaml saying `version`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "PulumiPolicy.yaml").write_text(f"runtime: python\nversion: {version}\n")
    (directory / "__main__.py").write_text(PACK)
    return directory


def received(messages: list[str], call: str) -> dict[str, dict[str, Any]]:
    """The probe's reports of one call kind, by resource name."""
    found = {}
    for message in messages:
        try:
            # The SDK puts the policy's description and a newline before the message.
            report = json.loads(message.split("\n", 1)[-1])
        except ValueError:
            continue
        if report.get("call") == call:
            found[report["name"]] = report
    return found
