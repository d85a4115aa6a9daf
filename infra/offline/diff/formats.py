"""A diff as text (the terminal), markdown (one PR comment section per stack) or JSON."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from infra.offline.diff.model import BACKUP_STEPS, Change, ResourceDiff, StackDiff

_SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}
_OP_SYMBOLS = {"add": "+", "remove": "-", "update": "~"}
_MARKDOWN_ORDER = ("replace", "delete", "create", "update")
"""Markdown lists resources by action, the ones that can lose data first."""
_MARKDOWN_LIMIT = 60_000
"""GitHub refuses comments over 65,536 characters; details beyond this are left out."""


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _summary(diff: StackDiff) -> str:
    counts = diff.counts()
    parts = [f"{counts[a]} to {a}" for a in ("create", "update", "replace", "delete") if counts[a]]
    changes = ", ".join(parts) if parts else "no changes"
    note = " (stack file absent at the base)" if diff.base_missing else ""
    return f"{changes}, {counts['unchanged']} unchanged{note}"


def _change_lines(change: Change, indent: str = "    ") -> list[str]:
    """A change as `pulumi preview --diff` shows it; multi-line strings as a unified diff, its
    lines under `indent` (none in markdown, where review colours lines starting with - or +)."""
    symbol = _OP_SYMBOLS[change.op]
    note = f"  [forces replacement: {change.replaces}]" if change.replaces else ""
    if change.op == "add":
        head = f"{symbol} {change.path}: {_value(change.new)}"
    elif change.op == "remove":
        head = f"{symbol} {change.path}: {_value(change.old)}"
    elif (
        not change.masked
        and isinstance(change.old, str)
        and isinstance(change.new, str)
        and ("\n" in change.old or "\n" in change.new)
    ):
        lines = difflib.unified_diff(
            change.old.splitlines(),
            change.new.splitlines(),
            "base",
            "working tree",
            n=2,
            lineterm="",
        )
        return [f"{symbol} {change.path}:{note}", *(f"{indent}{line}" for line in list(lines)[2:])]
    else:
        head = f"{symbol} {change.path}: {_value(change.old)} => {_value(change.new)}"
    return [head + note]


def _at_risk(resource: ResourceDiff) -> str:
    return f"{resource.action} {resource.type.rsplit(':', 1)[-1]} {resource.name}"


def data_loss_warning(diff: StackDiff) -> str | None:
    """One sentence naming the stateful resources the diff replaces or deletes, or None."""
    risky = diff.data_at_risk()
    if not risky:
        return None
    named = ", ".join(f"{_at_risk(r)} ({r.file})" for r in risky)
    return (
        f"data at risk: {named}. A replaced or deleted StatefulSet, claim or volume can lose "
        f"its data; take a backup first ({BACKUP_STEPS})."
    )


def format_text(diffs: Sequence[StackDiff], base: str) -> str:
    lines: list[str] = []
    for diff in diffs:
        lines.append(f"Stack {diff.stack} ({base} => working tree): {_summary(diff)}")
        if warning := data_loss_warning(diff):
            lines.append(f"  WARNING: {warning}")
        for resource in diff.resources:
            symbol = _SYMBOLS[resource.action]
            lines.append(
                f"  {symbol:<2} {resource.action:<7} {resource.type} {resource.name}"
                f"  ({resource.file})"
            )
            for change in resource.changes:
                lines.extend(f"         {line}" for line in _change_lines(change))
            lines.extend(f"         ! {warning}" for warning in resource.warnings)
        lines.append("")
    return "\n".join(lines)


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so no value can close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def format_markdown(diffs: Sequence[StackDiff], base: str) -> str:
    """For a PR comment: per stack, a summary table then the property changes, collapsed. Each
    stack is a section of its own, so the sections of separate runs can be concatenated."""
    sections = [_markdown_section(diff, base) for diff in diffs]
    text = "\n".join(sections)
    if len(text) <= _MARKDOWN_LIMIT:
        return text
    summaries = [section.split("<details>", 1)[0] for section in sections]
    return "\n".join(
        [
            *summaries,
            "Property changes are too long for a comment: run "
            f"`python -m infra diff --stack <stack> --base {base}` locally.",
            "",
        ]
    )


def _markdown_section(diff: StackDiff, base: str) -> str:
    lines = [f"### Stack `{diff.stack}` against `{base}`: {_summary(diff)}", ""]
    risky = diff.data_at_risk()
    if risky:
        named = ", ".join(
            f"**{r.action}** {r.type.rsplit(':', 1)[-1]} `{r.name}` ({_cell(r.file)})"
            for r in risky
        )
        lines += [
            f"> [!WARNING]\n> Data at risk: {named}. A replaced or deleted StatefulSet, "
            f"PersistentVolumeClaim or volume can lose its data: take a backup first "
            f"({BACKUP_STEPS}).",
            "",
        ]
    if not diff.resources:
        return "\n".join([*lines, "No changes.", ""])
    ordered = sorted(diff.resources, key=lambda r: (_MARKDOWN_ORDER.index(r.action), r.file))
    lines += ["| action | type | name | file |", "| --- | --- | --- | --- |"]
    for r in ordered:
        action = f"**{r.action}**" if r.action in ("replace", "delete") else r.action
        lines.append(f"| {action} | {_cell(r.type)} | {_cell(r.name)} | {_cell(r.file)} |")
    lines += [f"\n> [!CAUTION]\n> `{r.file}`: {w}" for r in ordered for w in r.warnings]
    details = [r for r in ordered if r.changes]
    if details:
        lines += ["", f"<details><summary>Property changes ({len(details)})</summary>", ""]
        for action in _MARKDOWN_ORDER:
            group = [r for r in details if r.action == action]
            if not group:
                continue
            lines += [f"#### {action} ({len(group)})", ""]
            for resource in group:
                body = "\n".join(
                    line for c in resource.changes for line in _change_lines(c, indent="")
                )
                fence = _fence(body)
                lines += [f"`{resource.file}`", "", f"{fence}diff", body, fence, ""]
        lines.append("</details>")
    return "\n".join([*lines, ""])


def to_json(diffs: Sequence[StackDiff], base: str) -> str:
    return json.dumps(
        {
            "base": base,
            "stacks": [
                {
                    "stack": d.stack,
                    "base_missing": d.base_missing,
                    "summary": d.counts(),
                    "data_at_risk": [
                        {"file": r.file, "type": r.type, "name": r.name, "action": r.action}
                        for r in d.data_at_risk()
                    ],
                    "resources": [
                        {
                            "file": r.file,
                            "type": r.type,
                            "name": r.name,
                            "action": r.action,
                            "warnings": list(r.warnings),
                            "changes": [
                                {
                                    "path": c.path,
                                    "op": c.op,
                                    "old": c.old,
                                    "new": c.new,
                                    "replaces": c.replaces,
                                    "masked": c.masked,
                                }
                                for c in r.changes
                            ],
                        }
                        for r in d.resources
                    ],
                }
                for d in diffs
            ],
        },
        indent=2,
        ensure_ascii=False,
        sort_keys=False,
    )


FORMATS: dict[str, Callable[[Sequence[StackDiff], str], str]] = {
    "text": format_text,
    "markdown": format_markdown,
    "json": to_json,
}
