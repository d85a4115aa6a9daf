"""The configuration files a stack deploys, read from the resources recorded under mocks.

Kubernetes ships files in ConfigMaps and Secrets mounted into the pods; Docker uploads them into
the containers. Either way this gives `{path in the container: text}` per container, so the tests
hand the real servers exactly what a deployment would, not a copy rendered on the side.
"""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

from tests.support.mocks import StackRun, build_stack, pod_specs, unwrap


def _kubernetes_files(run: StackRun) -> dict[str, dict[str, str]]:
    data: dict[tuple[str, str], dict[str, str]] = {}
    for resource in run.of_type("core/v1:ConfigMap"):
        data["configMap", resource.inputs["metadata"]["name"]] = resource.inputs.get("data", {})
    for resource in run.of_type("core/v1:Secret"):
        inputs = unwrap(resource.inputs)
        data["secret", inputs["metadata"]["name"]] = inputs.get("stringData", {})
    files: dict[str, dict[str, str]] = {}
    for workload, pod in pod_specs(run):
        sources = {}
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                sources[volume["name"]] = data["configMap", volume["configMap"]["name"]]
            elif "secret" in volume and ("secret", volume["secret"]["secretName"]) in data:
                sources[volume["name"]] = data["secret", volume["secret"]["secretName"]]
        for container in pod["containers"]:
            mounted = {}
            for mount in container.get("volumeMounts", []):
                for key, text in sources.get(mount["name"], {}).items():
                    mounted[f"{mount['mountPath']}/{key}"] = text
            if mounted:
                files[f"{workload.name}/{container['name']}"] = mounted
    return files


def _docker_files(run: StackRun) -> dict[str, dict[str, str]]:
    files = {}
    for resource in run.of_type("docker:index/container:Container"):
        uploads = unwrap(resource.inputs).get("uploads", [])
        if uploads:
            files[resource.name] = {u["file"]: u["content"] for u in uploads}
    return files


@cache
def stack_run(stack: str, **overrides: str) -> StackRun:
    """The program run for `stack` under mocks, once per test session (tests only read it)."""
    return build_stack(stack, **overrides)


@cache
def deployed_files(stack: str, **overrides: str) -> MappingProxyType[str, str]:
    """Every file the stack's containers get from the program, by path inside the container.

    Paths are unique across the stack's containers (each server has its own config directory);
    a clash would mean two components fight over one path, which this refuses.
    """
    run = stack_run(stack, **overrides)
    by_container = _kubernetes_files(run) | _docker_files(run)
    merged: dict[str, str] = {}
    for container, files in by_container.items():
        for path, text in files.items():
            if path in merged and merged[path] != text:
                raise AssertionError(f"{container} and another container both ship {path}")
            merged[path] = text
    return MappingProxyType(merged)
