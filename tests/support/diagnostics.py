"""Reading the policy pack's diagnostics in the tests: which policies fired, the findings of one
policy apart from exemption and preview notes, and the one finding a test expects."""

from __future__ import annotations

from infra.offline.analyzer import Diagnostic


def of(diagnostics: list[Diagnostic], policy: str) -> list[Diagnostic]:
    return [d for d in diagnostics if d.policy_name == policy]


def violations(diagnostics: list[Diagnostic], policy: str) -> list[Diagnostic]:
    """Diagnostics of `policy` that are findings, not exemption or preview notes."""
    return [
        d
        for d in of(diagnostics, policy)
        if not d.message.startswith("exempted:") and "during preview" not in d.message
    ]


def fired(diagnostics: list[Diagnostic]) -> set[str]:
    return {d.policy_name for d in diagnostics}


def only(diagnostics: list[Diagnostic], policy: str, level: str = "mandatory") -> str:
    """The single finding of `policy` (asserting nothing else fired); returns its message."""
    assert fired(diagnostics) == {policy}, [d.message for d in diagnostics]
    found = violations(diagnostics, policy)
    assert len(found) == 1, [d.message for d in found]
    assert found[0].enforcement_level == level
    return found[0].message
