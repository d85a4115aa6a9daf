"""Deployment safety: a rollout whose new pods never become ready fails `pulumi up` instead of
hanging or passing. Kubernetes reports a stuck Deployment (progressDeadlineSeconds), the provider
awaits readiness (no skipAwait annotation) and custom timeouts bound the wait.

Mocks do not receive resource options, so the run registers a stack transformation: the SDK calls
it in-process with every resource's final options, before the mock monitor sees the resource.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
import yaml

from app.settings import Settings as AppSettings
from infra.offline.runtime import StackRun, run_program, stack_config
from tests.support.mocks import KUBERNETES_STACKS, STACKS, build_stack, unwrap
from tests.support.servers import REPO_ROOT

_WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")
_DURATION = re.compile(r"(\d+)([hms])")


def _seconds(duration: str) -> int:
    """A Go-style duration as Pulumi takes it ("15m", "1h30m", "900s") in seconds."""
    parts = _DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _run_with_options(stack: str) -> tuple[StackRun, dict[tuple[str, str], Any]]:
    """The stack's resources, and the custom timeouts each was constructed with."""
    from infra.program import run
    from stacks import load_settings

    timeouts: dict[tuple[str, str], Any] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        timeouts[(args.type_, args.name)] = args.opts.custom_timeouts if args.opts else None

    def program() -> None:
        pulumi.runtime.register_stack_transformation(record)
        run(load_settings())

    config, secret_keys = stack_config(stack)
    result = run_program(program, stack=stack, config=config, secret_keys=secret_keys)
    return result, timeouts


def _annotations(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "annotations" and isinstance(item, dict):
                yield item
            yield from _annotations(item)
    elif isinstance(value, list):
        for item in value:
            yield from _annotations(item)


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_workloads_have_rollout_timeouts_beyond_the_progress_deadline(stack: str) -> None:
    result, timeouts = _run_with_options(stack)
    # The recorder saw every resource the engine would, so a missing timeout cannot hide.
    assert {(r.type, r.name) for r in result.resources} <= set(timeouts)
    workloads = [r for r in result.resources if r.type in _WORKLOADS]
    assert {r.kind for r in workloads} == {"Deployment", "StatefulSet"}
    for workload in workloads:
        custom = timeouts[(workload.type, workload.name)]
        assert custom is not None, f"{workload.name}: no custom_timeouts"
        assert custom.create and custom.update, f"{workload.name}: {custom}"
        update = _seconds(custom.update)
        assert 60 <= update <= 3600, f"{workload.name}: update timeout {custom.update}"
        if workload.kind == "Deployment":
            deadline = unwrap(workload.inputs)["spec"]["progressDeadlineSeconds"]
            # Kubernetes' own verdict (ProgressDeadlineExceeded) must come before Pulumi gives up.
            assert 0 < deadline < update, f"{workload.name}: deadline {deadline}s vs {update}s"
            assert deadline < _seconds(custom.create), workload.name


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_deployment_has_a_progress_deadline(stack: str) -> None:
    result, _ = _run_with_options(stack)
    deployments = result.of_type("apps/v1:Deployment")
    assert {d.inputs["metadata"]["name"] for d in deployments} == {"app", "nginx"}
    for deployment in deployments:
        assert unwrap(deployment.inputs)["spec"].get("progressDeadlineSeconds", 0) > 0


@pytest.mark.parametrize("stack", STACKS)
def test_no_resource_skips_the_await_logic(stack: str) -> None:
    result, _ = _run_with_options(stack)
    for resource in result.resources:
        for found in _annotations(unwrap(resource.inputs)):
            assert "pulumi.com/skipAwait" not in found, resource.name


# --- the app's safeguards, per stack ----------------------------------------------------------


def _rendered_app_env(run: Any) -> dict[str, str]:
    for resource in run.resources:
        inputs = unwrap(resource.inputs)
        if resource.kind == "ConfigMap" and inputs["metadata"]["name"] == "app-app-env":
            return dict(inputs["data"])
        if resource.kind == "Container" and inputs["name"].endswith("-app"):
            return dict(entry.split("=", 1) for entry in inputs["envs"])
    raise AssertionError("the stack has no app container")


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_each_stack_gives_the_app_its_breaker_cache_and_tracing_settings(stack: str) -> None:
    app = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"][
        "safeguard:app"
    ]
    env = _rendered_app_env(build_stack(stack))
    # The app's own reading of the rendered environment, not a copy of its defaults.
    settings = AppSettings(
        database_url="postgresql://u:p@h/db",
        redis_url="redis://h",
        **{k.lower(): v for k, v in env.items() if k.startswith(("CIRCUIT_", "HTTP_", "OTEL_"))},
    )

    assert settings.circuit_breaker_failures == app["circuitBreaker"]["failures"]
    assert settings.circuit_breaker_cooldown_seconds == app["circuitBreaker"]["cooldownSeconds"]
    assert settings.http_cache_max_age_seconds == app["httpCacheMaxAgeSeconds"]
    # No stack names a collector yet, so tracing stays off everywhere.
    assert "otlpEndpoint" not in app.get("tracing", {})
    assert not settings.tracing_enabled


def test_a_collector_turns_tracing_on_with_the_stack_s_sample_ratio() -> None:
    tracing = {"otlpEndpoint": "http://collector.observability:4318", "sampleRatio": 0.1}
    stack_file = yaml.safe_load((REPO_ROOT / "Pulumi.production.yaml").read_text())
    app = {**stack_file["config"]["safeguard:app"], "tracing": tracing}
    env = _rendered_app_env(build_stack("production", app=json.dumps(app)))
    settings = AppSettings(
        database_url="postgresql://u:p@h/db",
        redis_url="redis://h",
        **{k.lower(): v for k, v in env.items() if k.startswith("OTEL_")},
    )

    assert settings.tracing_enabled
    assert settings.otlp_traces_endpoint == "http://collector.observability:4318/v1/traces"
    assert (settings.otel_traces_sampler, settings.otel_traces_sampler_arg) == (
        "parentbased_traceidratio",
        0.1,
    )
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=production"
