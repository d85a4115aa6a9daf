"""The engine and provider rules of the offline tool hold for the installed versions only as far
as they were read: an upgrade past a recorded bound fails here until the cited files are re-read."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from infra.offline.upstream import UPSTREAM, Upstream

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", UPSTREAM.values(), ids=lambda e: e.distribution)
def test_installed_version_is_within_what_was_read(entry: Upstream) -> None:
    installed = Version(importlib.metadata.version(entry.distribution))

    assert installed < Version(entry.below), (
        f"{entry.distribution} {installed} is installed, but the offline tool's rules for it were "
        f"verified against {entry.read} and hold below {entry.below} only. Re-read every file "
        f"cited with `{entry.read.split('@')[0]}@` in infra/offline/ at the installed tag, fix "
        "the rules that moved, then set `installed` and raise `below` in "
        "infra/offline/upstream.py."
    )
    assert installed >= Version(entry.installed), (
        f"{entry.distribution} {installed} is older than {entry.installed}, the version the "
        "rules were checked with: install requirements.txt"
    )


def test_every_rule_names_a_recorded_upstream() -> None:
    """Citations in the offline tool are `<repo>@<tag>:`; each repo is one recorded above."""
    recorded = " ".join(entry.read for entry in UPSTREAM.values())
    cited: set[str] = set()
    for path in (ROOT / "infra" / "offline").rglob("*.py"):
        for word in path.read_text().split():
            repo, at, rest = word.strip("(),`").partition("@v")
            if at and rest[:1].isdigit() and "/" in repo and ":" in rest:
                cited.add(f"{repo}@v{rest.split(':')[0]}")
    assert cited, "no citation found: the scan itself is broken"
    assert {c for c in cited if c not in recorded} == set()


def test_the_kubernetes_floor_is_the_version_the_diff_rules_need() -> None:
    """The diff says a StatefulSet's volumeClaimTemplates change replaces it; pulumi-kubernetes
    does so from 4.29 on (maintainer's comment on pulumi/pulumi-kubernetes#4328)."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    (line,) = [line for line in lines if line.startswith("pulumi-kubernetes")]
    requirement = Requirement(line.split("#")[0])

    assert not requirement.specifier.contains("4.28.9")
    assert requirement.specifier.contains("4.29.0")
    assert requirement.specifier.contains(importlib.metadata.version("pulumi_kubernetes"))
