"""What the benchmarks measure is what they claim to measure (their figures are not tested)."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.offline.check import check_manifests
from tests.support.manifests import generate


def test_the_gate_benchmark_stack_passes_every_policy(tmp_path: Path) -> None:
    # bench/gate_speed.py times full evaluations: a workload failing a policy early would make
    # the gate look faster than it is on a compliant stack.
    resources = generate(tmp_path, 3)
    report = check_manifests(tmp_path)

    documents = [d for f in sorted(tmp_path.glob("*.yaml")) for d in yaml.safe_load_all(f.open())]
    assert resources == len(documents) == report.resources == 9
    assert {d["kind"] for d in documents} == {"Deployment", "Service", "NetworkPolicy"}
    assert report.violations == ()
    assert report.exemptions == ()
