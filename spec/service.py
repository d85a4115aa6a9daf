"""The platform-neutral description of a service: its containers and what they need (compute,
ports, env, probes, mounts), who may connect to it, how it scales and what it publishes.

Components describe each service once with these dataclasses; the back ends in
`infra.platforms.kubernetes` and `infra.platforms.docker` turn the description into resources.
The hardening every container gets (non-root, read-only root, no capabilities, no privilege
escalation) is not optional here: there is no field to switch it off, so it holds on both
platforms for every workload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi

from spec.probes import HttpGet, Probes
from spec.volumes import Mount, Volume


@dataclass(frozen=True, kw_only=True)
class Compute:
    """Requests and limits in Kubernetes quantities (cpu "250m", memory "256Mi")."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True, kw_only=True)
class Port:
    """A TCP port the container listens on."""

    name: str
    port: int
    target: int | None = None
    """For service ports: the container port behind it, when it differs."""


@dataclass(frozen=True, kw_only=True)
class Container:
    """One container: the main process of a service, a sidecar, or an init step."""

    name: str
    image: pulumi.Input[str]
    uid: int
    gid: int
    compute: Compute
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    ports: tuple[Port, ...] = ()
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Plain settings; an output of another component (an address) is fine, a credential never
    (that is `secret_env`)."""
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Environment variable -> key of the service's Secret it is read from (Kubernetes)."""
    secret_files: Mapping[str, str] = field(default_factory=dict)
    """Where the platform delivers secrets as files (Docker): the variable that names a file
    the image reads a secret from (the official images' `*_FILE` conventions, the app's
    `*_FILE` settings) -> key of the service's Secret the file holds. The Docker back end
    refuses a container with `secret_env` and none of these: there, no secret value sits in
    the environment."""
    probes: Probes | None = None
    """Required for every long-running container; init steps have none."""
    mounts: tuple[Mount, ...] = ()
    http_client: Literal["wget", "python"] | None = "wget"
    """What the image can make an HTTP request with. Docker runs health checks inside the
    container, so HttpGet probes become a command of this tool there; None (scratch images)
    means Docker cannot check the container, and `no_docker_healthcheck` says why."""
    stop_grace_seconds: int = 30
    """Seconds from SIGTERM to SIGKILL: what a clean stop may take (Kubernetes: the pod's
    terminationGracePeriodSeconds, the largest of its containers'; Docker: stop_timeout, and
    the provider's destroy_grace_seconds)."""
    no_docker_healthcheck: str | None = None
    """Why Docker cannot health-check this container and what watches it instead. Required
    exactly when its probes cannot run inside the container; the Docker back end declares it
    as the reason of an exemption from the `docker-healthcheck` policy, so every policy report
    lists it for review."""

    def __post_init__(self) -> None:
        # A container with probes that Docker cannot run must say why (and what covers it); a
        # reason on a container Docker can check would be a stale exemption.
        http_probes = self.probes is not None and any(
            isinstance(p.check, HttpGet)
            for p in (self.probes.liveness, self.probes.readiness, self.probes.startup)
            if p is not None
        )
        uncheckable = http_probes and self.http_client is None
        if self.stop_grace_seconds < 1:
            raise ValueError(f"container {self.name!r}: stop_grace_seconds must be at least 1")
        reason = (self.no_docker_healthcheck or "").strip()
        if uncheckable and not reason:
            raise ValueError(
                f"container {self.name!r}: Docker cannot run its HTTP probes (no http_client); "
                "set no_docker_healthcheck to why, and what watches it instead"
            )
        if reason and not uncheckable:
            raise ValueError(
                f"container {self.name!r}: no_docker_healthcheck is set, but Docker can check "
                "this container; remove it"
            )


@dataclass(frozen=True, kw_only=True)
class Ingress:
    """Who may open connections to which ports of the service."""

    from_services: tuple[str, ...] = ()
    """Service names (the `component` label on Kubernetes) allowed in."""
    ports: tuple[int, ...] = ()
    from_anywhere: bool = False
    """Only the edge proxy sets this: it is the one entry point from outside the namespace."""


@dataclass(frozen=True, kw_only=True)
class Autoscaling:
    """Horizontal scaling on CPU utilisation (of the requests)."""

    min_replicas: int
    max_replicas: int
    target_cpu_percent: int = 70


@dataclass(frozen=True, kw_only=True)
class Publish:
    """How the service is reached from outside (Docker: a host port on 127.0.0.1)."""

    port: int
    """Container port."""
    host_port: int


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """Everything a back end needs to run one service."""

    name: str
    """Service name: the DNS name other services use, and the root of every child name."""
    containers: tuple[Container, ...]
    """The first container is the service's main process; the others are sidecars."""
    init_containers: tuple[Container, ...] = ()
    replicas: int = 1
    stateful: bool = False
    volumes: tuple[Volume, ...] = ()
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The service's Secret: credentials, never rendered into plain env or ConfigMaps."""
    service_ports: tuple[Port, ...] = ()
    ingress: tuple[Ingress, ...] = ()
    autoscaling: Autoscaling | None = None
    min_available: int | None = None
    """Pods kept through voluntary disruptions; None means no PodDisruptionBudget."""
    node_metrics: bool = False
    """Reads kubelet/cAdvisor metrics through the API server (Prometheus on Kubernetes): its
    ServiceAccount is bound to a read-only ClusterRole, and its token reaches only the
    container that mounts an ApiTokenVolume."""
    resource_name: str | None = None
    """Prefix of the Pulumi resource names when it differs from `name`."""
    public: bool = False
    """The edge: exposed outside the platform (LoadBalancer/Ingress; Docker: published port)."""
    publish: tuple[Publish, ...] = ()
    """Docker only: extra ports published on 127.0.0.1 for operators (Grafana, Prometheus)."""

    @property
    def prefix(self) -> str:
        """Prefix of the service's Pulumi resource names: `resource_name`, else `name`."""
        return self.resource_name or self.name


@dataclass(frozen=True, kw_only=True)
class ScheduledJob:
    """A command run on a schedule next to a service (backups, restore checks)."""

    name: str
    schedule: str
    container: Container
    volumes: tuple[Volume, ...] = ()
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The job's own Secret, which its container's `secret_env` reads from."""
    deadline_seconds: int = 3600
    """How long one run may take, its retries included (the Job's activeDeadlineSeconds)."""

    def __post_init__(self) -> None:
        if self.deadline_seconds < 1:
            raise ValueError(f"job {self.name!r}: deadline_seconds must be at least 1")
