"""Where workloads keep their pods and containers, for every Kubernetes kind and for Docker.

Policies ask this module for "the pod spec" and "the containers" instead of knowing that a
CronJob nests its pod three templates deep or that Docker env is a list of NAME=value strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from _values import MALFORMED, UNKNOWN, Findings, Marker, is_unknown, join

DOCKER_CONTAINER: Final = "docker:index/container:Container"

_TEMPLATE: Final = ("spec", "template")
_CRONJOB_TEMPLATE: Final = ("spec", "jobTemplate", "spec", "template")

# Pod-template path per type; () means the resource is the pod itself.
POD_TEMPLATES: Final[Mapping[str, tuple[str, ...]]] = {
    "kubernetes:core/v1:Pod": (),
    "kubernetes:core/v1:PodTemplate": ("template",),
    "kubernetes:core/v1:ReplicationController": _TEMPLATE,
    "kubernetes:apps/v1:Deployment": _TEMPLATE,
    "kubernetes:apps/v1:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1:DaemonSet": _TEMPLATE,
    "kubernetes:apps/v1:ReplicaSet": _TEMPLATE,
    "kubernetes:apps/v1beta1:Deployment": _TEMPLATE,
    "kubernetes:apps/v1beta1:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1beta2:Deployment": _TEMPLATE,
    "kubernetes:apps/v1beta2:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1beta2:DaemonSet": _TEMPLATE,
    "kubernetes:apps/v1beta2:ReplicaSet": _TEMPLATE,
    "kubernetes:extensions/v1beta1:Deployment": _TEMPLATE,
    "kubernetes:extensions/v1beta1:DaemonSet": _TEMPLATE,
    "kubernetes:extensions/v1beta1:ReplicaSet": _TEMPLATE,
    "kubernetes:batch/v1:Job": _TEMPLATE,
    "kubernetes:batch/v1:CronJob": _CRONJOB_TEMPLATE,
    "kubernetes:batch/v1beta1:CronJob": _CRONJOB_TEMPLATE,
    "kubernetes:batch/v2alpha1:CronJob": _CRONJOB_TEMPLATE,
}
K8S_WORKLOADS: Final = frozenset(POD_TEMPLATES)
BATCH_WORKLOADS: Final = frozenset(t for t in POD_TEMPLATES if ":batch/" in t)
# Kinds whose spec.replicas says how many identical pods run.
REPLICATED_WORKLOADS: Final = frozenset(
    t for t in POD_TEMPLATES if t.rsplit(":", 1)[1] in ("Deployment", "StatefulSet", "ReplicaSet")
) | {"kubernetes:core/v1:ReplicationController"}

INGRESSES: Final = frozenset(
    {
        "kubernetes:networking.k8s.io/v1:Ingress",
        "kubernetes:networking.k8s.io/v1beta1:Ingress",
        "kubernetes:extensions/v1beta1:Ingress",
    }
)
CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
SERVICE: Final = "kubernetes:core/v1:Service"
NETWORK_POLICIES: Final = frozenset(
    {
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "kubernetes:extensions/v1beta1:NetworkPolicy",
    }
)
PDBS: Final = frozenset(
    {"kubernetes:policy/v1:PodDisruptionBudget", "kubernetes:policy/v1beta1:PodDisruptionBudget"}
)
HPAS: Final = frozenset(
    f"kubernetes:autoscaling/{v}:HorizontalPodAutoscaler"
    for v in ("v1", "v2", "v2beta1", "v2beta2")
)

COMPONENT_LABEL: Final = "app.kubernetes.io/component"

ContainerKind = Literal["containers", "initContainers", "ephemeralContainers"]
ALL_CONTAINER_KINDS: Final[tuple[ContainerKind, ...]] = (
    "containers",
    "initContainers",
    "ephemeralContainers",
)


def kind_of(resource_type: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`; `docker:index/container:Container` too."""
    return resource_type.rsplit(":", 1)[-1]


def label(resource_type: str, name: str) -> str:
    """How messages name a resource: `Deployment 'api'`."""
    return f"{kind_of(resource_type)} '{name}'"


def pod_template_metadata_path(resource_type: str) -> tuple[str, ...] | None:
    """Path of the pod template's metadata for template-carrying kinds (not bare Pods)."""
    template = POD_TEMPLATES.get(resource_type)
    return (*template, "metadata") if template else None


@dataclass(frozen=True)
class PodSpec:
    """A pod spec found inside a resource, with its dotted path for messages."""

    spec: Mapping[str, Any]
    path: str
    batch: bool
    """True for Job and CronJob pods, which run to completion."""


@dataclass(frozen=True)
class Container:
    """One container of a pod spec: which list it is in, its position, name and path."""

    kind: ContainerKind
    index: int
    name: str
    spec: Mapping[str, Any]
    path: str

    @property
    def title(self) -> str:
        noun = {"containers": "container", "initContainers": "init container"}.get(
            self.kind, "ephemeral container"
        )
        return f"{noun} '{self.name}'"


def pod_spec(resource_type: str, props: Mapping[str, Any], findings: Findings) -> PodSpec | None:
    """The pod spec of a Kubernetes workload, or None if absent, unknown or malformed."""
    template = POD_TEMPLATES.get(resource_type)
    if template is None:
        return None
    value: Any = props
    path = ""
    for key in (*template, "spec"):
        value = findings.field(value, key, path, dict)
        path = join(path, key)
    if value is None or isinstance(value, Marker):
        return None
    batch = resource_type in BATCH_WORKLOADS
    if resource_type == "kubernetes:core/v1:Pod":
        # A bare pod that never restarts runs to completion, like a Job's pod.
        batch = value.get("restartPolicy") in ("Never", "OnFailure")
    return PodSpec(spec=value, path=path, batch=batch)


def pod_labels(resource_type: str, props: Mapping[str, Any], findings: Findings) -> Any:
    """The labels pods of this workload carry: a dict, None, UNKNOWN or MALFORMED."""
    template = POD_TEMPLATES.get(resource_type)
    if template is None:
        return None
    value: Any = props
    path = ""
    for key in (*template, "metadata", "labels"):
        value = findings.field(value, key, path, dict)
        path = join(path, key)
    return value


def containers(
    pod: PodSpec, findings: Findings, kinds: tuple[ContainerKind, ...] = ALL_CONTAINER_KINDS
) -> Iterator[Container]:
    """The containers of `pod` in the given lists, with unknown/malformed entries recorded."""
    for kind in kinds:
        listed = findings.field(pod.spec, kind, pod.path, list)
        for index, path, spec in findings.items(listed, join(pod.path, kind), dict):
            name = spec.get("name")
            yield Container(
                kind=kind,
                index=index,
                name=name if isinstance(name, str) else f"#{index}",
                spec=spec,
                path=path,
            )


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its name, the literal value (if any) and where it is."""

    name: str
    value: Any
    """A string, None when not literal (valueFrom), or UNKNOWN."""
    path: str
    source: Mapping[str, Any] | None = None
    """Kubernetes `valueFrom`, if used."""
    secret: bool = False
    """Docker only: the value is a Pulumi secret output."""


def k8s_env(container: Container, findings: Findings) -> Iterator[EnvVar]:
    env = findings.field(container.spec, "env", container.path, list)
    for _, path, var in findings.items(env, join(container.path, "env"), dict):
        name = findings.check_value(var.get("name"), join(path, "name"), str)
        if not isinstance(name, str):
            continue
        value = findings.check_value(var.get("value"), join(path, "value"), str)
        source = findings.check_value(var.get("valueFrom"), join(path, "valueFrom"), dict)
        if value is MALFORMED:
            continue
        yield EnvVar(
            name=name,
            value=value,
            path=path,
            source=source if isinstance(source, Mapping) else None,
        )


def docker_env(
    props: Mapping[str, Any], findings: Findings, secret_paths: set[tuple[str | int, ...]]
) -> Iterator[EnvVar]:
    """Docker `envs` entries ("NAME=value"); unknown entries are recorded and skipped."""
    envs = findings.field(props, "envs", "", list)
    entire_list_secret = ("envs",) in secret_paths
    for index, path, entry in findings.items(envs, "envs", str):
        name, sep, value = entry.partition("=")
        if not sep:
            findings.malformed(path, entry, 'a "NAME=value" string')
            continue
        secret = entire_list_secret or ("envs", index) in secret_paths
        yield EnvVar(name=name.strip(), value=value, path=path, secret=secret)


def docker_file_carrier(props: Mapping[str, Any], findings: Findings) -> bool:
    """True for a Docker container that nothing ever starts, so it runs no process: it only
    holds `uploads` for the volumes it mounts (the dev stack's `*-files` containers).

    All three must say so, as known values:
    - `start` false: the provider creates the container and never starts it;
    - `mustRun` false: with true, the provider's Read deletes a stopped container and fails
      (kreuzwerker v3.x) or its Update starts it (v4.x);
    - `restart` absent or "no": a restart policy lets the daemon start the container itself.
    Anything else is a workload, checked by every rule.
    """
    start = findings.field(props, "start", "", bool)
    must_run = findings.field(props, "mustRun", "", bool)
    restart = findings.field(props, "restart", "", str)
    return start is False and must_run is False and restart in (None, "no")


def labels_component(labels: Any) -> Any:
    """The `app.kubernetes.io/component` label value: a string, None, UNKNOWN or MALFORMED."""
    if not isinstance(labels, Mapping):
        return labels if isinstance(labels, Marker) else None
    value = labels.get(COMPONENT_LABEL)
    return UNKNOWN if is_unknown(value) else value
