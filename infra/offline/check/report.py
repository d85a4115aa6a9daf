"""What the policy check found: the subjects it sent to the pack, each finding on its resource,
and the report in text or JSON (`python -m infra check [--json]`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.offline.analyzer import Resource

EXEMPTED = "exempted:"
"""How the pack marks a used exemption: an advisory diagnostic whose message starts so."""


class CheckError(Exception):
    """A usage or input problem: the check cannot run (exit code 2)."""


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
