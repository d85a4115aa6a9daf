"""Container privilege policies: no root, no privilege escalation, capabilities, read-only root
filesystem and isolation from the host, for Kubernetes workloads and Docker containers."""

from __future__ import annotations

from typing import Any, Final

from _framework import Resource, resource_policy
from _values import INT, Findings, is_unknown, join, known
from _workloads import (
    DOCKER_CONTAINER,
    K8S_WORKLOADS,
    Container,
    PodSpec,
    containers,
    docker_file_carrier,
    label,
    pod_spec,
)
from pulumi_policy import EnforcementLevel, PolicyConfigSchema

DEFAULT_FORBIDDEN_CAPABILITIES: Final = (
    "ALL",
    "AUDIT_CONTROL",
    "BPF",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYSLOG",
)

_CAPABILITIES_SCHEMA: Final = PolicyConfigSchema(
    properties={
        "forbiddenCapabilities": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(DEFAULT_FORBIDDEN_CAPABILITIES),
            "description": "Capabilities that may never be added (without the CAP_ prefix).",
        }
    }
)


# --- k8s-no-root -----------------------------------------------------------------------------


def _root_problem(
    container: Container, pod: PodSpec, c_user: Any, c_nonroot: Any, p_user: Any, p_nonroot: Any
) -> str | None:
    """Why the container may run as root, or None. Container settings override pod settings."""
    csc = join(container.path, "securityContext")
    psc = join(pod.path, "securityContext")
    if c_user is not None:
        if known(c_user) and c_user == 0:
            return f"{csc}.runAsUser is 0 (root)"
        return None
    if c_nonroot is not None:
        if not known(c_nonroot) or c_nonroot is True:
            return None
        # runAsNonRoot: false at container level: only a non-zero pod-level uid keeps it safe.
        if p_user is None:
            return (
                f"{csc}.runAsNonRoot is false and no runAsUser is set, so the image's user "
                "(root unless its Dockerfile says otherwise) is used"
            )
        if known(p_user) and p_user == 0:
            return f"{csc}.runAsNonRoot is false and {psc}.runAsUser is 0 (root)"
        return None
    if p_user is not None:
        if known(p_user) and p_user == 0:
            return f"{psc}.runAsUser is 0 (root) and the container does not override it"
        return None
    if p_nonroot is True or not known(p_nonroot):
        return None
    if p_nonroot is False:
        return f"{psc}.runAsNonRoot is false and no runAsUser is set on the container or pod"
    return (
        f"neither {csc} nor {psc} sets runAsNonRoot: true or a non-zero runAsUser, so the "
        "image's user (root unless its Dockerfile says otherwise) is used"
    )


def check_k8s_no_root(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    where = label(resource.type, resource.name)
    psc_path = join(pod.path, "securityContext")
    psc = findings.field(pod.spec, "securityContext", pod.path, dict)
    p_user = findings.field(psc, "runAsUser", psc_path, INT)
    p_nonroot = findings.field(psc, "runAsNonRoot", psc_path, bool)
    for container in containers(pod, findings):
        csc_path = join(container.path, "securityContext")
        csc = findings.field(container.spec, "securityContext", container.path, dict)
        c_user = findings.field(csc, "runAsUser", csc_path, INT)
        c_nonroot = findings.field(csc, "runAsNonRoot", csc_path, bool)
        problem = _root_problem(container, pod, c_user, c_nonroot, p_user, p_nonroot)
        if problem:
            findings.fail(
                f"{where}: {container.title} may run as root: {problem}. Set "
                f"{csc_path}.runAsNonRoot: true and a non-zero runAsUser (e.g. 10001)."
            )
        privileged = findings.field(csc, "privileged", csc_path, bool)
        if privileged is True:
            findings.fail(
                f"{where}: {container.title} is privileged ({csc_path}.privileged: true), "
                "i.e. root on the node. Remove privileged; add only the capability it needs."
            )
        escalation = findings.field(csc, "allowPrivilegeEscalation", csc_path, bool)
        if escalation is True or escalation is None:
            state = (
                "is true" if escalation is True else "is not set (Kubernetes defaults it to true)"
            )
            findings.fail(
                f"{where}: {container.title} may gain privileges: "
                f"{csc_path}.allowPrivilegeEscalation {state}. "
                f"Set {csc_path}.allowPrivilegeEscalation: false."
            )


# --- docker-no-root --------------------------------------------------------------------------


def check_docker_no_root(resource: Resource, findings: Findings) -> None:
    where = label(resource.type, resource.name)
    user = findings.field(resource.props, "user", "", str)
    if user is None or (isinstance(user, str) and not user.strip()):
        findings.fail(
            f"{where}: user is not set, so the image's default user (root unless its "
            "Dockerfile says otherwise) runs the container. Set user to a non-root uid:gid "
            'such as "10001:10001".'
        )
    elif isinstance(user, str):
        uid = user.split(":", 1)[0].strip()
        if uid.lower() == "root" or (uid.isdigit() and int(uid) == 0):
            findings.fail(
                f'{where}: user is "{user}", which is root. Set user to a non-root uid:gid '
                'such as "10001:10001".'
            )
    if findings.field(resource.props, "privileged", "", bool) is True:
        findings.fail(
            f"{where}: privileged is true, which gives the container root on the host. "
            "Remove privileged; add only the capability it needs."
        )


# --- capabilities ----------------------------------------------------------------------------


def _forbidden_capabilities(config: Any) -> frozenset[str]:
    configured = config.get("forbiddenCapabilities") if hasattr(config, "get") else None
    if isinstance(configured, list) and all(isinstance(c, str) for c in configured):
        return frozenset(_cap(c) for c in configured)
    return frozenset(DEFAULT_FORBIDDEN_CAPABILITIES)


def _cap(name: str) -> str:
    name = name.strip().upper()
    return name.removeprefix("CAP_")


def _capability_problems(
    findings: Findings,
    drops: Any,
    adds: Any,
    forbidden: frozenset[str],
    drop_path: str,
    add_path: str,
) -> list[str]:
    problems = []
    dropped = {_cap(d) for _, _, d in findings.items(drops, drop_path, str)}
    undetermined = isinstance(drops, list) and any(is_unknown(d) for d in drops)
    if (drops is None or isinstance(drops, list)) and "ALL" not in dropped and not undetermined:
        problems.append(
            f"{drop_path} does not include ALL; drop ALL and add back only what is needed"
        )
    added = {_cap(a) for _, _, a in findings.items(adds, add_path, str)}
    if bad := sorted(added & forbidden):
        problems.append(f"{add_path} adds {', '.join(bad)}, which this policy forbids")
    return problems


def check_k8s_capabilities(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    forbidden = _forbidden_capabilities(resource.config)
    for container in containers(pod, findings):
        csc_path = join(container.path, "securityContext")
        caps_path = join(csc_path, "capabilities")
        csc = findings.field(container.spec, "securityContext", container.path, dict)
        caps = findings.field(csc, "capabilities", csc_path, dict)
        drops = findings.field(caps, "drop", caps_path, list)
        adds = findings.field(caps, "add", caps_path, list)
        for problem in _capability_problems(
            findings, drops, adds, forbidden, join(caps_path, "drop"), join(caps_path, "add")
        ):
            findings.fail(f"{label(resource.type, resource.name)}: {container.title}: {problem}.")


def check_docker_capabilities(resource: Resource, findings: Findings) -> None:
    caps = findings.field(resource.props, "capabilities", "", dict)
    drops = findings.field(caps, "drops", "capabilities", list)
    adds = findings.field(caps, "adds", "capabilities", list)
    forbidden = _forbidden_capabilities(resource.config)
    for problem in _capability_problems(
        findings, drops, adds, forbidden, "capabilities.drops", "capabilities.adds"
    ):
        findings.fail(f"{label(resource.type, resource.name)}: {problem}.")


# --- read-only root filesystem ---------------------------------------------------------------


def _state(value: bool | None) -> str:
    return "is not set" if value is None else f"is {str(value).lower()}"


def check_k8s_read_only_root(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    for container in containers(pod, findings):
        csc_path = join(container.path, "securityContext")
        csc = findings.field(container.spec, "securityContext", container.path, dict)
        value = findings.field(csc, "readOnlyRootFilesystem", csc_path, bool)
        if value is None or value is False:
            findings.fail(
                f"{label(resource.type, resource.name)}: {container.title} has a writable root "
                f"filesystem ({csc_path}.readOnlyRootFilesystem {_state(value)}). Set it to "
                "true and mount an emptyDir where the process must write."
            )


def check_docker_read_only_root(resource: Resource, findings: Findings) -> None:
    # A carrier must be writable to receive its uploads; with no process, nothing writes later.
    if docker_file_carrier(resource.props, findings):
        return
    value = findings.field(resource.props, "readOnly", "", bool)
    if value is None or value is False:
        findings.fail(
            f"{label(resource.type, resource.name)}: the root filesystem is writable "
            f"(readOnly {_state(value)}). Set readOnly: true and mount a tmpfs or volume "
            "where the process must write."
        )


# --- host isolation --------------------------------------------------------------------------


def check_k8s_host_isolation(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    where = label(resource.type, resource.name)
    for key, shares in (
        ("hostNetwork", "the node's network stack"),
        ("hostPID", "the node's process table"),
        ("hostIPC", "the node's IPC namespace"),
    ):
        if findings.field(pod.spec, key, pod.path, bool) is True:
            findings.fail(
                f"{where}: {join(pod.path, key)} is true, so the pod shares {shares}. Remove {key}."
            )
    volumes = findings.field(pod.spec, "volumes", pod.path, list)
    for _, path, volume in findings.items(volumes, join(pod.path, "volumes"), dict):
        if volume.get("hostPath") is not None:
            findings.fail(
                f"{where}: volume '{volume.get('name')}' ({path}.hostPath) mounts a path of the "
                "node. Use an emptyDir, ConfigMap, Secret or PersistentVolumeClaim instead."
            )


def check_docker_host_isolation(resource: Resource, findings: Findings) -> None:
    props = resource.props
    where = label(resource.type, resource.name)
    for key, shares in (
        ("networkMode", "the host's network stack"),
        ("pidMode", "the host's process table"),
        ("ipcMode", "the host's IPC namespace"),
        ("usernsMode", "the host's user namespace"),
    ):
        value = findings.field(props, key, "", str)
        if isinstance(value, str) and value.strip().lower() == "host":
            findings.fail(f'{where}: {key} is "host", so the container shares {shares}.')
    if findings.field(props, "privileged", "", bool) is True:
        findings.fail(f"{where}: privileged is true, which exposes every host device.")
    mounts = findings.field(props, "mounts", "", list)
    for _, path, mount in findings.items(mounts, "mounts", dict):
        mount_type = findings.field(mount, "type", path, str)
        if isinstance(mount_type, str) and mount_type.lower() == "bind":
            findings.fail(
                f"{where}: {path} bind-mounts the host path {mount.get('source')!r}. "
                "Use a named volume (type volume) or uploads instead."
            )
    volumes = findings.field(props, "volumes", "", list)
    for _, path, volume in findings.items(volumes, "volumes", dict):
        host_path = volume.get("hostPath")
        if host_path:
            findings.fail(
                f"{where}: {path}.hostPath mounts the host path {host_path!r}. "
                "Use a named volume (volumeName) instead."
            )
    devices = findings.field(props, "devices", "", list)
    if isinstance(devices, list) and devices:
        findings.fail(f"{where}: devices passes {len(devices)} host device(s) into the container.")


POLICIES: Final = [
    resource_policy(
        name="k8s-no-root",
        description="Kubernetes containers must not run as root, privileged or with "
        "privilege escalation.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_no_root,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    resource_policy(
        name="docker-no-root",
        description="Docker containers must run as a non-root user and not privileged.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_no_root,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    resource_policy(
        name="k8s-drop-capabilities",
        description="Kubernetes containers must drop ALL capabilities and add no dangerous one.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_capabilities,
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=_CAPABILITIES_SCHEMA,
    ),
    resource_policy(
        name="docker-drop-capabilities",
        description="Docker containers must drop ALL capabilities and add no dangerous one.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_capabilities,
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=_CAPABILITIES_SCHEMA,
    ),
    resource_policy(
        name="k8s-read-only-root-filesystem",
        description="Kubernetes containers must have a read-only root filesystem.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_read_only_root,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    resource_policy(
        name="docker-read-only-root-filesystem",
        description="Docker containers must have a read-only root filesystem.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_read_only_root,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    resource_policy(
        name="k8s-host-isolation",
        description="Kubernetes pods must not share the node's network, PID or IPC namespaces "
        "or mount node paths.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_host_isolation,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    resource_policy(
        name="docker-host-isolation",
        description="Docker containers must not share the host's namespaces, run privileged "
        "or bind-mount host paths.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_host_isolation,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
