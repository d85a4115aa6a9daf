"""Typed settings of one stack, read from `safeguard:*` config and validated as a whole.

This is the only module that reads `pulumi.Config`. Every problem found (wrong type, unknown key,
missing value, a production rule broken) is collected, and `load_settings` raises one
`SettingsError` that lists them all, before the program registers any resource.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pulumi

from spec.addresses import host_name_problem, network_problem
from spec.images import is_pinned_image

NAMESPACE = "safeguard"
Environment = Literal["development", "staging", "production"]
PlatformName = Literal["kubernetes", "docker"]

_DEFAULT_ENVIRONMENT: dict[str, Environment] = {
    "dev": "development",
    "staging": "staging",
    "production": "production",
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
DOCKER_BACKEND_SUBNET = "10.213.0.0/24"
"""Docker: the backend network's subnet unless edge.internalNetwork names another."""
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
"""Kubernetes: where pod addresses come from unless edge.internalNetwork names the cluster's
pod CIDR (RFC 1918: every common CNI's default lies inside)."""


class SettingsError(ValueError):
    """The stack's configuration is invalid; the message lists every problem."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack {stack!r} has {len(problems)} configuration problem(s):\n{lines}")


@dataclass(frozen=True, kw_only=True)
class ComputeSettings:
    """Requests and limits of a service's main container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True, kw_only=True)
class AppSettings:
    """The FastAPI workload."""

    image: str
    """Pinned image reference; with `build`, the name and tag given to the local build."""
    build: bool
    """Build app/Dockerfile with pulumi-docker instead of pulling `image`."""
    replicas: int
    autoscale_max: int | None
    """Upper bound of the HPA (from `replicas` up); None: no autoscaling."""
    log_level: str
    allowed_origins: tuple[str, ...]
    compute: ComputeSettings


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    """The database and its backups."""

    storage_size: str
    backup_enabled: bool
    backup_schedule: str
    backup_retention_days: int
    backup_storage_size: str
    compute: ComputeSettings


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    """The cache and rate-limit store."""

    storage_size: str
    compute: ComputeSettings


@dataclass(frozen=True, kw_only=True)
class EdgeSettings:
    """nginx at the edge and how the outside world reaches it."""

    host: str
    """The name clients reach the service by; requests naming another host are refused."""
    tls_secret: str | None
    """Kubernetes Secret (type kubernetes.io/tls) with the certificate; None: plain HTTP."""
    service_type: str
    ingress_class: str | None
    public_port: int
    """Docker: the port published on 127.0.0.1."""
    trusted_proxies: tuple[str, ...]
    """Networks of the load balancers in front of nginx whose X-Forwarded-For nginx believes."""
    internal_network: tuple[str, ...]
    """Where nginx's connections to the app come from; the app believes X-Forwarded-For from
    there only. Docker: the backend network's subnet; Kubernetes: the pod network."""
    rate_per_second: int
    burst: int
    connections_per_client: int
    client_max_body_size: str


@dataclass(frozen=True, kw_only=True)
class MonitoringSettings:
    """Prometheus, Alertmanager and Grafana."""

    prometheus_storage_size: str
    prometheus_retention: str
    alertmanager_storage_size: str
    grafana_storage_size: str
    critical_webhook: pulumi.Output[str] | None
    warning_webhook: pulumi.Output[str] | None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the program needs for one stack."""

    stack: str
    platform: PlatformName
    environment: Environment
    namespace: str
    persistent_storage: bool
    storage_class: str | None
    api_keys: pulumi.Output[str] | None
    app: AppSettings
    postgres: PostgresSettings
    redis: RedisSettings
    edge: EdgeSettings
    monitoring: MonitoringSettings

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


T = TypeVar("T")


class _Section:
    """Reads one structured config value (an object), recording problems instead of raising."""

    def __init__(self, key: str, raw: Any, problems: list[str]) -> None:
        self.key = key
        self.problems = problems
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.append(f"{NAMESPACE}:{key}: must be an object, got {type(raw).__name__}")
            raw = {}
        self.raw: dict[str, Any] = raw
        self.seen: set[str] = set()

    def get(self, name: str, kind: type[T], default: T) -> T:
        self.seen.add(name)
        value = self.raw.get(name, default)
        # bool is an int in Python; a replica count of `true` is still a mistake.
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            if value is not None or default is not None:
                self.problems.append(
                    f"{NAMESPACE}:{self.key}.{name}: must be {kind.__name__}, got {value!r}"
                )
            return default
        return value

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(name, list, list(default))
        if not all(isinstance(v, str) for v in value):
            self.problems.append(f"{NAMESPACE}:{self.key}.{name}: must be a list of strings")
            return default
        return tuple(value)

    def compute(self, default: ComputeSettings) -> ComputeSettings:
        raw = self.get("resources", dict, {})
        section = _Section(f"{self.key}.resources", raw, self.problems)
        result = ComputeSettings(
            cpu_request=section.get("cpuRequest", str, default.cpu_request),
            memory_request=section.get("memoryRequest", str, default.memory_request),
            cpu_limit=section.get("cpuLimit", str, default.cpu_limit),
            memory_limit=section.get("memoryLimit", str, default.memory_limit),
        )
        section.done()
        return result

    def done(self) -> None:
        for unknown in sorted(set(self.raw) - self.seen):
            self.problems.append(f"{NAMESPACE}:{self.key}.{unknown}: unknown setting")


def _object(config: pulumi.Config, key: str, problems: list[str]) -> _Section:
    text = config.get(key)
    try:
        raw = json.loads(text) if text is not None else None
    except json.JSONDecodeError as error:
        problems.append(f"{NAMESPACE}:{key}: not valid JSON/YAML object ({error.msg})")
        raw = None
    return _Section(key, raw, problems)


def _choice(value: str | None, key: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    if value not in allowed:
        problems.append(f"{NAMESPACE}:{key}: must be one of {', '.join(allowed)}, got {value!r}")


def load_settings(stack: str | None = None, config: pulumi.Config | None = None) -> Settings:
    """Read and validate the current stack's settings; raise SettingsError listing all problems."""
    stack = stack or pulumi.get_stack()
    config = config or pulumi.Config(NAMESPACE)
    problems: list[str] = []

    platform = config.get("platform") or "kubernetes"
    _choice(platform, "platform", ("kubernetes", "docker"), problems)
    environment = config.get("environment") or _DEFAULT_ENVIRONMENT.get(stack)
    _choice(environment, "environment", ("development", "staging", "production"), problems)
    namespace = config.get("namespace") or f"safeguard-{stack}"
    if namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
        problems.append(
            f"{NAMESPACE}:namespace: {namespace!r} is reserved; use a namespace of its own"
        )
    persistent = _flag(config, "persistentStorage", True, problems)

    app = _app(_object(config, "app", problems), stack)
    postgres = _postgres(_object(config, "postgres", problems))
    redis = _redis(_object(config, "redis", problems))
    edge = _edge(_object(config, "edge", problems), platform)
    monitoring = _monitoring(_object(config, "monitoring", problems), config)

    settings = Settings(
        stack=stack,
        platform=platform,  # type: ignore[arg-type]
        environment=environment,  # type: ignore[arg-type]
        namespace=namespace,
        persistent_storage=persistent,
        storage_class=config.get("storageClass"),
        api_keys=config.get_secret("apiKeys"),
        app=app,
        postgres=postgres,
        redis=redis,
        edge=edge,
        monitoring=monitoring,
    )
    problems += _rules(settings)
    if problems:
        raise SettingsError(stack, problems)
    return settings


def _flag(config: pulumi.Config, key: str, default: bool, problems: list[str]) -> bool:
    text = config.get(key)
    if text is None:
        return default
    if text.lower() not in ("true", "false"):
        problems.append(f"{NAMESPACE}:{key}: must be true or false, got {text!r}")
        return default
    return text.lower() == "true"


def _finish(section: _Section, build: Callable[[], T]) -> T:
    result = build()
    section.done()
    return result


def _app(s: _Section, stack: str) -> AppSettings:
    build = s.get("build", bool, False)
    image = s.get("image", str, None)
    if image is None:
        if not build:
            s.problems.append(f"{NAMESPACE}:app.image: required (or set app.build to true)")
        image = f"safeguard-app:{stack}"
    return _finish(
        s,
        lambda: AppSettings(
            image=image,
            build=build,
            replicas=s.get("replicas", int, 1),
            autoscale_max=s.get("autoscaleMax", int, None),
            log_level=s.get("logLevel", str, "INFO"),
            allowed_origins=s.strings("allowedOrigins", ()),
            compute=s.compute(
                ComputeSettings(
                    cpu_request="100m",
                    memory_request="192Mi",
                    cpu_limit="500m",
                    memory_limit="384Mi",
                )
            ),
        ),
    )


def _postgres(s: _Section) -> PostgresSettings:
    return _finish(
        s,
        lambda: PostgresSettings(
            storage_size=s.get("storageSize", str, "5Gi"),
            backup_enabled=s.get("backupEnabled", bool, True),
            backup_schedule=s.get("backupSchedule", str, "30 2 * * *"),
            backup_retention_days=s.get("backupRetentionDays", int, 7),
            backup_storage_size=s.get("backupStorageSize", str, "10Gi"),
            compute=s.compute(
                ComputeSettings(
                    cpu_request="250m", memory_request="512Mi", cpu_limit="1", memory_limit="1Gi"
                )
            ),
        ),
    )


def _redis(s: _Section) -> RedisSettings:
    return _finish(
        s,
        lambda: RedisSettings(
            storage_size=s.get("storageSize", str, "1Gi"),
            compute=s.compute(
                ComputeSettings(
                    cpu_request="50m",
                    memory_request="128Mi",
                    cpu_limit="250m",
                    memory_limit="256Mi",
                )
            ),
        ),
    )


def _edge(s: _Section, platform: str) -> EdgeSettings:
    internal = (DOCKER_BACKEND_SUBNET,) if platform == "docker" else PRIVATE_NETWORKS
    return _finish(
        s,
        lambda: EdgeSettings(
            host=s.get("host", str, "localhost"),
            tls_secret=s.get("tlsSecret", str, None),
            service_type=s.get("serviceType", str, "ClusterIP"),
            ingress_class=s.get("ingressClass", str, None),
            public_port=s.get("publicPort", int, 8080),
            trusted_proxies=s.strings("trustedProxies", ()),
            internal_network=s.strings("internalNetwork", internal),
            rate_per_second=s.get("ratePerSecond", int, 20),
            burst=s.get("burst", int, 40),
            connections_per_client=s.get("connectionsPerClient", int, 20),
            client_max_body_size=s.get("clientMaxBodySize", str, "1m"),
        ),
    )


def _monitoring(s: _Section, config: pulumi.Config) -> MonitoringSettings:
    return _finish(
        s,
        lambda: MonitoringSettings(
            prometheus_storage_size=s.get("prometheusStorageSize", str, "10Gi"),
            prometheus_retention=s.get("prometheusRetention", str, "15d"),
            alertmanager_storage_size=s.get("alertmanagerStorageSize", str, "1Gi"),
            grafana_storage_size=s.get("grafanaStorageSize", str, "1Gi"),
            critical_webhook=config.get_secret("alertWebhookCritical"),
            warning_webhook=config.get_secret("alertWebhookWarning"),
        ),
    )


def _edge_rules(edge: EdgeSettings, platform: str) -> list[str]:
    problems: list[str] = []
    _choice(edge.service_type, "edge.serviceType", _SERVICE_TYPES, problems)
    if not 1 <= edge.public_port <= 65535:
        problems.append(f"{NAMESPACE}:edge.publicPort: not a TCP port ({edge.public_port})")
    if (problem := host_name_problem(edge.host)) is not None:
        problems.append(f"{NAMESPACE}:edge.host: {problem}")
    for key, networks in (
        ("trustedProxies", edge.trusted_proxies),
        ("internalNetwork", edge.internal_network),
    ):
        problems += [
            f"{NAMESPACE}:edge.{key}: {problem}"
            for network in networks
            if (problem := network_problem(network)) is not None
        ]
    if not edge.internal_network:
        problems.append(
            f"{NAMESPACE}:edge.internalNetwork: must name where nginx reaches the app from; "
            "empty, the app would take every client for nginx"
        )
    elif (
        platform == "docker"
        and all(network_problem(network) is None for network in edge.internal_network)
        and (
            len(edge.internal_network) != 1
            or ipaddress.ip_network(edge.internal_network[0]).version != 4
        )
    ):
        problems.append(
            f"{NAMESPACE}:edge.internalNetwork: on docker, one IPv4 subnet for the backend "
            f"network, got {list(edge.internal_network)}"
        )
    if not 1 <= edge.connections_per_client <= 65535:
        problems.append(f"{NAMESPACE}:edge.connectionsPerClient: must be 1 to 65535")
    return problems


def _rules(s: Settings) -> list[str]:
    """Rules across fields, and what production demands on top."""
    problems: list[str] = []
    app = s.app
    if app.replicas < 1:
        problems.append(f"{NAMESPACE}:app.replicas: must be at least 1, got {app.replicas}")
    if app.autoscale_max is not None and app.autoscale_max < app.replicas:
        problems.append(
            f"{NAMESPACE}:app.autoscaleMax: must be at least app.replicas ({app.replicas})"
        )
    if not is_pinned_image(app.image):
        problems.append(
            f"{NAMESPACE}:app.image: {app.image!r} is not pinned; use an explicit tag other than "
            "latest, or a digest"
        )
    _choice(app.log_level, "app.logLevel", _LOG_LEVELS, problems)
    if "*" in app.allowed_origins:
        problems.append(f"{NAMESPACE}:app.allowedOrigins: '*' is not allowed; list the origins")
    for origin in app.allowed_origins:
        if origin != "*" and not origin.startswith(("https://", "http://")):
            problems.append(f"{NAMESPACE}:app.allowedOrigins: {origin!r} is not an http(s) origin")
    problems += _edge_rules(s.edge, s.platform)
    if s.postgres.backup_retention_days < 1:
        problems.append(f"{NAMESPACE}:postgres.backupRetentionDays: must be at least 1")

    if s.platform == "docker":
        if app.replicas != 1 or app.autoscale_max is not None:
            problems.append(
                f"{NAMESPACE}:app.replicas: Docker runs one container per service; "
                "use replicas 1 and no autoscaleMax"
            )
        if s.postgres.backup_enabled:
            problems.append(
                f"{NAMESPACE}:postgres.backupEnabled: scheduled backups need the kubernetes "
                "platform (CronJob); set false on docker"
            )
        if s.edge.tls_secret or s.edge.ingress_class:
            problems.append(
                f"{NAMESPACE}:edge: tlsSecret and ingressClass exist only on the kubernetes "
                "platform"
            )
    elif app.build:
        problems.append(
            f"{NAMESPACE}:app.build: a cluster cannot run an image built on this machine; "
            "push it and set app.image"
        )

    if s.is_production:
        if app.replicas < 2:
            problems.append(
                f"{NAMESPACE}:app.replicas: production needs at least 2, got {app.replicas}"
            )
        if not app.allowed_origins:
            problems.append(f"{NAMESPACE}:app.allowedOrigins: production needs explicit origins")
        if not s.edge.tls_secret:
            problems.append(
                f"{NAMESPACE}:edge.tlsSecret: production needs TLS; name the certificate Secret"
            )
        if not s.persistent_storage:
            problems.append(f"{NAMESPACE}:persistentStorage: production needs persistent storage")
        if s.platform != "kubernetes":
            problems.append(f"{NAMESPACE}:platform: production runs on kubernetes")
        if not s.postgres.backup_enabled:
            problems.append(f"{NAMESPACE}:postgres.backupEnabled: production needs backups")
    return problems
