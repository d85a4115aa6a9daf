"""What the policy check found: the subjects it sent to the pack, each finding on its resource,
warnings that are not verdicts, and the report as text (a terminal, coloured on a TTY),
markdown (a pull-request comment) or JSON (`python -m infra check --format text|markdown|json`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Only named: the check's start imports this module before gRPC and the SDK (check/early.py).
    from infra.offline.analyzer import Resource

EXEMPTED = "exempted:"
"""How the pack marks a used exemption: an advisory diagnostic whose message starts so."""

MARKDOWN_LIMIT = 20_000
"""Characters of one stack's markdown report; a PR comment holds at most 65,536 in all, shared
with the other stacks and the diff. Beyond this the findings are counted, not listed."""

_LEVEL_ORDER = {"mandatory": 0, "advisory": 1}


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
    unknown: bool = False
    """The policy could not run on a value not known during preview (the SDK's advisory
    note); `pulumi up` checks it again once the value is known."""

    @property
    def exemption(self) -> bool:
        return self.message.startswith(EXEMPTED)

    @property
    def reason(self) -> str:
        """An exemption's reason and where it was declared (the message without `exempted:`)."""
        return self.message.removeprefix(EXEMPTED).strip()

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
class ReportWarning:
    """Something a reviewer must see that is not a policy verdict and changes no exit code: an
    object defined in two files, documents skipped as not Kubernetes objects, a setting of the
    stack that works but should not reach production."""

    kind: str
    """What sort of warning, for machines: `duplicate`, `skipped`, ..."""
    message: str
    """One sentence for people: what, where, and what it means."""
    files: tuple[str, ...] = ()
    """The `file#document` places it is about, if any."""

    def __post_init__(self) -> None:
        if not self.kind or not self.message:
            raise ValueError("a report warning needs a kind and a message")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "files": list(self.files)}


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
    unknowns: tuple[Finding, ...] = ()
    """Notes of policies that could not run on values unknown during preview."""
    warnings: tuple[ReportWarning, ...] = ()
    """Shown with the report, never a verdict; whoever finds one appends it."""

    def count(self, level: str) -> int:
        return sum(1 for f in self.violations if f.level == level)

    @property
    def passed(self) -> bool:
        return self.count("mandatory") == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def target(self) -> str:
        return f"stack {self.stack}" if self.manifests is None else self.manifests

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "manifests": self.manifests,
            "pack": {"name": self.pack_name, "version": self.pack_version},
            "config": self.config,
            "resources": self.resources,
            "violations": [f.to_json() for f in self.violations],
            "exemptions": [f.to_json() for f in self.exemptions],
            "unknowns": [f.to_json() for f in self.unknowns],
            "warnings": [w.to_json() for w in self.warnings],
            "summary": {
                "mandatory": self.count("mandatory"),
                "advisory": self.count("advisory"),
                "exemptions": len(self.exemptions),
                "unknowns": len(self.unknowns),
                "warnings": len(self.warnings),
                "resources_with_violations": len({f.urn for f in self.violations}),
                "passed": self.passed,
            },
        }

    def summary(self) -> str:
        """`7 mandatory violations and 1 advisory violation in 3 resources; 1 exemption`."""
        mandatory, advisory = self.count("mandatory"), self.count("advisory")
        affected = len({f.urn for f in self.violations})
        found = (
            f"{plural(mandatory, 'mandatory violation')} and "
            f"{plural(advisory, 'advisory violation')}"
        )
        if self.violations:
            found += f" in {plural(affected, 'resource')}"
        return f"{found}; {plural(len(self.exemptions), 'exemption')}"

    def to_text(self, colour: bool = False) -> str:
        paint = _paint if colour else _plain
        config = self.config or "the pack's default levels"
        # The CLI's `<pack>@v<version>` (pulumi/pulumi@v3.259.0:pkg/backend/display/diff.go
        # #renderDiffPolicyViolationEvent).
        lines = [
            f"policy check of {self.target}: pack {self.pack_name}@v{self.pack_version}, "
            f"config {config}, {plural(self.resources, 'resource')}",
        ]
        for group in _by_resource(self.violations):
            lines += ["", paint("bold", _resource_line(group[0]))]
            lines += [
                _indent(f"{paint(f.level, f'[{f.level}]')} {f.policy}: {f.message}") for f in group
            ]
        if self.exemptions:
            heading = "Exemptions (checks skipped on purpose; review the reasons):"
            lines += ["", paint("bold", heading)]
            for group in _by_resource(self.exemptions):
                lines += ["", _resource_line(group[0])]
                lines += [_indent(f"{f.policy}: {f.reason}") for f in group]
        if self.unknowns:
            lines += ["", paint("bold", "Not known during preview (checked again by `pulumi up`):")]
            for group in _by_resource(self.unknowns):
                lines += ["", _resource_line(group[0])]
                lines += [_indent(f"{f.policy}: {f.message}") for f in group]
        if self.warnings:
            lines += ["", paint("warning", "Warnings:")]
            for warning in self.warnings:
                lines.append(_indent(f"- {warning.message}"))
                lines += _listed(warning, limit=10)
        verdict = paint("passed", "PASSED") if self.passed else paint("mandatory", "FAILED")
        lines += [
            "",
            f"{verdict}: {self.summary()}; {plural(self.resources, 'resource')} checked",
        ]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """One section for a pull-request comment: the verdict, the findings grouped by policy
        with counts, the exemptions as exemptions, the warnings. Sections of separate runs can
        be concatenated into one comment."""
        head = self._markdown_head()
        body = self._markdown_body()
        if sum(len(line) + 1 for line in (*head, *body)) > MARKDOWN_LIMIT:
            body = [
                *self._markdown_counts(),
                "",
                f"The findings are too many to list here: run `{self._command()}` to see them all.",
            ]
        return "\n".join([*head, *body, ""])

    def _command(self) -> str:
        if self.manifests is not None:
            return f"python -m infra check --manifests {self.manifests}"
        return f"python -m infra check --stack {self.stack}"

    def _markdown_head(self) -> list[str]:
        verdict = ":white_check_mark: passed" if self.passed else ":x: **failed**"
        target = f"stack `{self.stack}`" if self.manifests is None else f"`{self.manifests}`"
        config = f"`{self.config}`" if self.config else "the pack's default levels"
        return [
            f"### Policy check of {target}: {verdict}",
            "",
            f"{self.summary()}; {plural(len(self.warnings), 'warning')}. "
            f"{plural(self.resources, 'resource')} checked by pack "
            f"`{self.pack_name}@v{self.pack_version}` with {config}; "
            f"{plural(len(self.unknowns), 'policy note')} on values not known during preview.",
        ]

    def _markdown_counts(self) -> list[str]:
        groups = _by_policy(self.violations)
        if not groups:
            return []
        lines = ["", "| policy | level | violations | resources |", "| --- | --- | ---: | ---: |"]
        for (policy, level), findings in groups:
            resources = len({f.urn for f in findings})
            lines.append(f"| `{policy}` | {level} | {len(findings)} | {resources} |")
        return lines

    def _markdown_body(self) -> list[str]:
        lines = self._markdown_counts()
        for (policy, level), findings in _by_policy(self.violations):
            lines += ["", f"#### `{policy}` ({level}): {plural(len(findings), 'violation')}", ""]
            lines += [f"- {_md_resource(f)}: {md_escape(f.message)}" for f in findings]
        if self.exemptions:
            lines += [
                "",
                f"#### {plural(len(self.exemptions), 'exemption')}: checks skipped on purpose, "
                "review the reasons",
                "",
            ]
            lines += [
                f"- `{f.policy}` on {_md_resource(f)}: {md_escape(f.reason)}"
                for f in sorted(self.exemptions, key=lambda f: (f.policy, f.name))
            ]
        if self.warnings:
            lines += ["", f"#### {plural(len(self.warnings), 'warning')}", ""]
            for warning in self.warnings:
                lines.append(f"- {md_escape(warning.message)}")
                if warning.kind == "skipped":
                    shown = ", ".join(f"`{f}`" for f in warning.files[:10])
                    more = len(warning.files) - 10
                    lines.append(f"  ({shown}{f' and {more} more' if more > 0 else ''})")
        return lines


def plural(count: int, noun: str) -> str:
    """`1 resource`, `2 resources`, `0 exemptions`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def error_json(message: str) -> dict[str, Any]:
    """What `--format json` prints when the check cannot run (exit code 2)."""
    return {"error": message, "exit_code": 2, "passed": False}


def error_markdown(message: str, target: str) -> str:
    """What `--format markdown` prints when the check cannot run (exit code 2)."""
    return "\n".join(
        [
            f"### Policy check of {target}: :x: **could not run**",
            "",
            "```text",
            message.replace("```", "'''"),
            "```",
            "",
        ]
    )


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def md_escape(text: str) -> str:
    """Plain text that markdown shows as written (messages hold `*`, `$http_origin`, `<url>`)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _md_resource(finding: Finding) -> str:
    where = f" (`{finding.source}`)" if finding.source else ""
    name = finding.name.replace("`", "'")
    return f"`{finding.type}` `{name}`{where}"


def _resource_line(finding: Finding) -> str:
    where = f" ({finding.source})" if finding.source else ""
    return f"{finding.type} {finding.name}{where}"


def _listed(warning: ReportWarning, limit: int) -> list[str]:
    if warning.kind != "skipped" or not warning.files:
        return []
    shown = list(warning.files[:limit])
    more = len(warning.files) - len(shown)
    return [_indent(f"    {f}") for f in shown] + (
        [_indent(f"    ... and {more} more")] if more > 0 else []
    )


def _by_resource(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings grouped per resource in report order; mandatory first within a resource."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.urn, finding.source or ""), []).append(finding)
    return [
        sorted(group, key=lambda f: (_LEVEL_ORDER.get(f.level, 2), f.policy))
        for group in groups.values()
    ]


def _by_policy(findings: Sequence[Finding]) -> list[tuple[tuple[str, str], list[Finding]]]:
    """Findings per (policy, level): mandatory first, then by count, most first."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.policy, finding.level), []).append(finding)
    return sorted(
        groups.items(),
        key=lambda item: (_LEVEL_ORDER.get(item[0][1], 2), -len(item[1]), item[0][0]),
    )


def _indent(text: str) -> str:
    first, *rest = text.splitlines() or [""]
    return "\n".join([f"  {first}", *(f"      {line}" for line in rest)])


_STYLES = {
    "bold": "1",
    "mandatory": "1;31",
    "advisory": "33",
    "warning": "1;33",
    "passed": "1;32",
}


def _paint(style: str, text: str) -> str:
    # Three SGR codes are all the report uses; a terminal library would be more than that.
    code = _STYLES.get(style)
    return f"\033[{code}m{text}\033[0m" if code else text


def _plain(style: str, text: str) -> str:
    return text
