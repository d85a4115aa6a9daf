"""policies/security.py: no root (Kubernetes and Docker), no privilege escalation, a read-only
root filesystem, dropped capabilities and host isolation."""

from __future__ import annotations

from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess, Resource
from tests.support.diagnostics import fired, only, violations
from tests.support.policies import (
    POD_PATH,
    container,
    deployment,
    docker,
    init_container,
    security_context,
    workload,
)

# --- k8s-no-root -----------------------------------------------------------------------------


def test_container_run_as_user_zero_overrides_pod_non_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsNonRoot=None, runAsUser=0)),
        securityContext={"runAsNonRoot": True, "runAsUser": 10001},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "container 'api'" in message
    assert "spec.template.spec.containers[0].securityContext.runAsUser is 0" in message


def test_container_non_root_overrides_pod_run_as_user_zero(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=True)),
        securityContext={"runAsUser": 0},
    )

    assert pack.analyze(resource) == []


def test_pod_run_as_user_zero_is_inherited(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None)),
        securityContext={"runAsUser": 0, "runAsNonRoot": True},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "spec.template.spec.securityContext.runAsUser is 0" in message


def test_container_run_as_non_root_false_overrides_pod_non_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=False)),
        securityContext={"runAsNonRoot": True},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "containers[0].securityContext.runAsNonRoot is false" in message


def test_pod_level_non_root_alone_is_enough(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None)),
        securityContext={"runAsNonRoot": True},
    )

    assert pack.analyze(resource) == []


def test_nothing_set_means_the_image_user_which_may_be_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "runAsNonRoot: true" in message and "container 'api'" in message


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("initContainers", "init container 'debug' may run as root"),
        ("ephemeralContainers", "ephemeral container 'debug' may run as root"),
    ],
)
def test_init_and_ephemeral_containers_count(
    pack: PolicyPackProcess, field: str, expected: str
) -> None:
    root = init_container("debug", securityContext=security_context(runAsUser=0))
    resource = deployment(container(), **{field: [root]})

    message = only(pack.analyze(resource), "k8s-no-root")

    assert expected in message
    assert f"spec.template.spec.{field}[0].securityContext.runAsUser" in message


def test_privileged_container_is_refused(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container("api"), container("sidecar", securityContext=security_context(privileged=True))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "container 'sidecar' is privileged" in message
    assert "spec.template.spec.containers[1].securityContext.privileged" in message


@pytest.mark.parametrize(("value", "state"), [(None, "is not set"), (True, "is true")])
def test_privilege_escalation_must_be_disabled(
    pack: PolicyPackProcess, value: bool | None, state: str
) -> None:
    resource = deployment(
        container(securityContext=security_context(allowPrivilegeEscalation=value))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert f"containers[0].securityContext.allowPrivilegeEscalation {state}" in message


@pytest.mark.parametrize("kind", ["Pod", "CronJob"])
def test_root_is_found_at_each_kinds_pod_spec(pack: PolicyPackProcess, kind: str) -> None:
    resource = workload(kind, container(securityContext=security_context(runAsUser=0)))

    message = only(pack.analyze(resource), "k8s-no-root")

    assert f"{POD_PATH[kind]}.containers[0].securityContext.runAsUser is 0" in message
    assert f"{kind} 'api'" in message


# --- docker-no-root --------------------------------------------------------------------------


@pytest.mark.parametrize("user", [None, "", "root", "0", "0:0", "root:app", " 0 "])
def test_docker_container_must_not_run_as_root(pack: PolicyPackProcess, user: str | None) -> None:
    resource = docker(user=user)

    message = only(pack.analyze(resource), "docker-no-root")

    assert "Container 'api'" in message and "user" in message


@pytest.mark.parametrize("user", ["10001", "10001:0", "app", "app:app"])
def test_docker_non_root_users_pass(pack: PolicyPackProcess, user: str) -> None:
    assert pack.analyze(docker(user=user)) == []


def test_privileged_docker_container_is_refused(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze(docker(privileged=True))

    assert fired(diagnostics) == {"docker-no-root", "docker-host-isolation"}
    assert violations(diagnostics, "docker-no-root")[0].enforcement_level == "mandatory"


# --- read-only root, capabilities, host isolation ---------------------------------------------


def test_writable_root_filesystem(pack: PolicyPackProcess) -> None:
    resource = deployment(container(securityContext=security_context(readOnlyRootFilesystem=False)))

    message = only(pack.analyze(resource), "k8s-read-only-root-filesystem", "advisory")

    assert "containers[0].securityContext.readOnlyRootFilesystem is false" in message
    assert "docker-read-only-root-filesystem" in fired(pack.analyze(docker(readOnly=None)))


def carrier(**changes: Any) -> Resource:
    """A file carrier as the dev stack makes one: writable, unlimited, never started."""
    fields: dict[str, Any] = {
        "readOnly": None,
        "memory": None,
        "cpus": None,
        "healthcheck": None,
        "start": False,
        "mustRun": False,
        "restart": "no",
        "networkMode": "none",
    }
    return docker("nginx-files", **{**fields, **changes})


def test_a_file_carrier_that_never_runs_gets_no_rules_about_running(
    pack: PolicyPackProcess,
) -> None:
    assert pack.analyze(carrier()) == []
    assert pack.analyze(carrier(restart=None)) == []
    # What does not depend on running still holds for it.
    assert fired(pack.analyze(carrier(user="0:0"))) == {"docker-no-root"}
    assert fired(pack.analyze(carrier(mounts=[{"type": "bind", "source": "/etc"}]))) == {
        "docker-host-isolation"
    }


@pytest.mark.parametrize(
    "could_start",
    [
        {"start": None},  # the provider's default: started
        {"start": True},
        {"mustRun": None},  # default true: v4's Update starts it
        {"restart": "unless-stopped"},  # the daemon starts it
        {"restart": "always"},
    ],
)
def test_a_carrier_that_could_start_is_checked_as_a_workload(
    pack: PolicyPackProcess, could_start: dict[str, Any]
) -> None:
    found = fired(pack.analyze(carrier(**could_start)))

    assert {"docker-read-only-root-filesystem", "docker-resource-limits"} <= found


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({}, "capabilities.drop does not include ALL"),
        ({"drop": ["NET_RAW"]}, "capabilities.drop does not include ALL"),
        (
            {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"]},
            "capabilities.add adds SYS_ADMIN",
        ),
    ],
)
def test_capabilities(pack: PolicyPackProcess, capabilities: dict[str, Any], expected: str) -> None:
    resource = deployment(container(securityContext=security_context(capabilities=capabilities)))

    message = only(pack.analyze(resource), "k8s-drop-capabilities", "advisory")

    assert f"spec.template.spec.containers[0].securityContext.{expected}" in message


def test_harmless_added_capability_passes(pack: PolicyPackProcess) -> None:
    caps = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    resource = deployment(container(securityContext=security_context(capabilities=caps)))

    assert pack.analyze(resource) == []


def test_forbidden_capabilities_are_configurable(pack: PolicyPackProcess) -> None:
    caps = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    resource = deployment(container(securityContext=security_context(capabilities=caps)))
    pack.configure({"k8s-drop-capabilities": {"forbiddenCapabilities": ["NET_BIND_SERVICE"]}})

    assert only(pack.analyze(resource), "k8s-drop-capabilities", "advisory")


def test_docker_capabilities(pack: PolicyPackProcess) -> None:
    message = only(
        pack.analyze(docker(capabilities={"drops": ["ALL"], "adds": ["NET_ADMIN"]})),
        "docker-drop-capabilities",
        "advisory",
    )

    assert "capabilities.adds adds NET_ADMIN" in message


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"hostNetwork": True}, "spec.template.spec.hostNetwork is true"),
        ({"hostPID": True}, "spec.template.spec.hostPID is true"),
        ({"hostIPC": True}, "spec.template.spec.hostIPC is true"),
        (
            {"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]},
            "volume 'docker' (spec.template.spec.volumes[0].hostPath)",
        ),
    ],
)
def test_k8s_host_isolation(pack: PolicyPackProcess, pod: dict[str, Any], expected: str) -> None:
    message = only(pack.analyze(deployment(**pod)), "k8s-host-isolation", "advisory")

    assert expected in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"networkMode": "host"}, 'networkMode is "host"'),
        ({"pidMode": "host"}, 'pidMode is "host"'),
        (
            {"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]},
            "mounts[0] bind-mounts the host path '/var/run/docker.sock'",
        ),
        ({"volumes": [{"hostPath": "/etc", "containerPath": "/h"}]}, "volumes[0].hostPath"),
    ],
)
def test_docker_host_isolation(
    pack: PolicyPackProcess, changes: dict[str, Any], expected: str
) -> None:
    message = only(pack.analyze(docker(**changes)), "docker-host-isolation", "advisory")

    assert expected in message


def test_named_volume_mount_passes(pack: PolicyPackProcess) -> None:
    mounts = [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}]

    assert pack.analyze(docker(mounts=mounts)) == []
