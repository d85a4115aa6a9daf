"""The test suite's Mocks and the helpers to build a stack under them.

`Mocks` is the recording mock of `infra.offline.runtime` (the offline render uses the same
one): it keeps every resource's inputs in the engine's wire format, camelCase with secrets
wrapped, as a policy pack receives them, and answers with deterministic outputs
(RandomPassword `result` included).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.offline.runtime import (
    Mocks,
    Recorded,
    StackRun,
    is_secret,
    run_program,
    run_stack,
    stack_config,
    unwrap,
)

__all__ = [
    "Mocks",
    "Recorded",
    "StackRun",
    "build_stack",
    "containers",
    "is_secret",
    "pod_specs",
    "run_program",
    "stack_config",
    "unwrap",
]

STACKS = ("dev", "staging", "production")
KUBERNETES_STACKS = ("staging", "production")


def build_stack(stack: str, **overrides: str) -> StackRun:
    """Run the whole program for `stack` under fresh Mocks, config from Pulumi.<stack>.yaml with
    `overrides` (`key` means `safeguard:key`) on top."""
    return run_stack(stack, {f"safeguard:{k}": v for k, v in overrides.items()})


def pod_specs(run: StackRun) -> Iterator[tuple[Recorded, dict[str, Any]]]:
    """(workload, pod spec) for every Deployment, StatefulSet and CronJob, secrets unwrapped."""
    for resource in run.resources:
        spec = unwrap(resource.inputs).get("spec", {})
        if resource.kind in ("Deployment", "StatefulSet"):
            yield resource, spec["template"]["spec"]
        elif resource.kind == "CronJob":
            yield resource, spec["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """(container, is_init) for every container of a pod spec."""
    for container in pod.get("initContainers", []):
        yield container, True
    for container in pod["containers"]:
        yield container, False
