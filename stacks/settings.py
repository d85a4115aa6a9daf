"""Typed settings of one stack, read from `safeguard:*` config and validated as a whole.

This is the only module that reads `pulumi.Config`. The settings are pydantic models: every
level refuses a key it does not know (naming the closest known one), types are strict, and each
value is checked where it is read: Kubernetes quantities and names, cron schedules, host names,
origins and URLs, image references. The rules across fields, and what production demands on
top, then run on the validated model, each only when the fields it reads are valid, so that one
mistake never brings a second, bogus one. Every problem found is collected, and `load_settings`
raises one `SettingsError` that lists them all, before the program registers any resource.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pulumi
import yaml
from promql_parser import parse_duration
from pulumi.runtime.config import CONFIG, get_config_env
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from spec.addresses import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    dns_label_problem,
    dns_subdomain_problem,
    host_name_problem,
    network_problem,
    origin_problem,
    url_problem,
)
from spec.images import (
    image_digest,
    image_problem,
    mirror_problem,
    mirrored,
    registry_problem,
)
from spec.offsite import (
    AGE_RECIPIENT_PATTERN,
    BUCKET_PATTERN,
    age_recipient_problem,
    bucket_problem,
    endpoint_problem,
    prefix_problem,
)
from spec.quantity import PATTERN as QUANTITY_PATTERN
from spec.quantity import cpu_cores, memory_mb, parse
from spec.schedule import recurring_schedule_problem

NAMESPACE = "safeguard"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACK_CONFIG_DIR = PROJECT_ROOT / "policies" / "config"
"""Where each stack's `--policy-pack-config` file lives: `<stack>.json`."""

Environment = Literal["development", "staging", "production"]
PlatformName = Literal["kubernetes", "docker"]

DEFAULT_ENVIRONMENTS: dict[str, Environment] = {
    "dev": "development",
    "staging": "staging",
    "production": "production",
}
"""The stacks whose environment follows from their name; any other stack must set it."""
DOCKER_BACKEND_SUBNET = "10.213.0.0/24"
"""Docker: the backend network's subnet unless edge.internalNetwork names another."""
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
"""Kubernetes: where pod addresses come from unless edge.internalNetwork names the cluster's
pod CIDR (RFC 1918: every common CNI's default lies inside)."""
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SECRET_KEYS = (
    "apiKeys",
    "alertWebhookCritical",
    "alertWebhookWarning",
    "backupAccessKeyId",
    "backupSecretAccessKey",
)
"""Top-level keys set with `pulumi config set --secret`; their values are never shown."""


class SettingsError(ValueError):
    """The stack's configuration is invalid; the message lists every problem."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack {stack!r} has {len(problems)} configuration problem(s):\n{lines}")


_ENCRYPTED = "[encrypted "


def encrypted_placeholder(key: str, ciphertext: str = "") -> str:
    """What the offline tool gives the program for a secret it cannot decrypt (`key` is the full
    key, `safeguard:apiKeys`): its presence counts, its format is `pulumi up`'s to check. It
    names a digest of the ciphertext, so that a new value is a new placeholder."""
    digest = f" {hashlib.sha256(ciphertext.encode()).hexdigest()[:16]}" if ciphertext else ""
    return f"{_ENCRYPTED}{key}{digest}]"


# --- values, each checked where it is read ----------------------------------------------------


def _checked(problem: Callable[[Any], str | None]) -> AfterValidator:
    def check(value: Any) -> Any:
        found = problem(value)
        if found is not None:
            raise PydanticCustomError("setting", "{problem}", {"problem": found})
        return value

    return AfterValidator(check)


def _quantity(kind: str, examples: str) -> Callable[[str], str | None]:
    def problem(text: str) -> str | None:
        try:
            value = parse(text)
        except ValueError:
            return f"{text!r} is not a Kubernetes quantity; {kind} is written like {examples}"
        return None if value > 0 else f"{kind} must be more than 0, got {text!r}"

    return problem


def _retention_problem(text: str) -> str | None:
    try:
        parse_duration(text)
    except ValueError as error:
        return f"{text!r} is not a Prometheus duration such as 15d, 12h or 1y ({error})"
    return None


def _body_size_problem(text: str) -> str | None:
    # nginx's size syntax as components/nginx.py takes it: bytes, or k or m.
    if re.fullmatch(r"[0-9]+[kKmM]?", text):
        return None
    return f"{text!r} is not an nginx size such as 1m, 512k or 1048576"


def _namespace_problem(name: str) -> str | None:
    if name in RESERVED_NAMESPACES:
        return f"{name!r} is reserved; use a namespace of its own"
    return dns_label_problem(name)


def _no_wildcard(origins: Any) -> Any:
    # Before the items are checked, so that '*' gets its own message rather than "not an origin".
    if isinstance(origins, list) and "*" in origins:
        raise PydanticCustomError("setting", "'*' is not allowed; list the origins")
    return origins


def _secret(problem: Callable[[str], str | None]) -> Callable[[SecretStr], str | None]:
    def check(secret: SecretStr) -> str | None:
        value = secret.get_secret_value()
        return None if value.startswith(_ENCRYPTED) else problem(value)

    return check


def _config_bool(value: Any) -> Any:
    # Pulumi hands every top-level value to the program as text; YAML's true is "true".
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise PydanticCustomError(
            "setting", "must be true or false, got {value}", {"value": repr(value)}
        )
    return value


Cpu = Annotated[
    str,
    _checked(_quantity("cpu", "250m, 0.5 or 2")),
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN}),
]
Memory = Annotated[
    str,
    _checked(_quantity("memory", "512Mi or 1Gi")),
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN}),
]
Size = Annotated[
    str,
    _checked(_quantity("a size", "50Gi or 500Mi")),
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN}),
]


Schedule = Annotated[str, _checked(recurring_schedule_problem)]
Image = Annotated[str, _checked(image_problem)]
Registry = Annotated[str, _checked(registry_problem)]
MirrorPrefix = Annotated[str, _checked(mirror_problem)]
HostName = Annotated[str, _checked(host_name_problem)]
Origin = Annotated[str, _checked(origin_problem)]
Network = Annotated[str, _checked(network_problem)]
Url = Annotated[str, _checked(url_problem)]
ObjectName = Annotated[
    str,
    _checked(dns_subdomain_problem),
    Field(json_schema_extra={"pattern": DNS_SUBDOMAIN_PATTERN}),
]
Namespace = Annotated[
    str,
    _checked(_namespace_problem),
    Field(json_schema_extra={"pattern": DNS_LABEL_PATTERN, "not": {"enum": RESERVED_NAMESPACES}}),
]
ConfigBool = Annotated[
    bool,
    BeforeValidator(_config_bool),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]}),
]
_SECRET_SCHEMA = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "object",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        },
    ]
}
ApiKeys = Annotated[SecretStr, WithJsonSchema(_SECRET_SCHEMA)]
StoreCredential = Annotated[SecretStr, WithJsonSchema(_SECRET_SCHEMA)]
WebhookUrl = Annotated[SecretStr, _checked(_secret(url_problem)), WithJsonSchema(_SECRET_SCHEMA)]


S3Endpoint = Annotated[str, _checked(endpoint_problem)]
Bucket = Annotated[
    str, _checked(bucket_problem), Field(json_schema_extra={"pattern": BUCKET_PATTERN})
]
KeyPrefix = Annotated[str, _checked(prefix_problem)]
AgeRecipient = Annotated[
    str,
    _checked(age_recipient_problem),
    Field(json_schema_extra={"pattern": AGE_RECIPIENT_PATTERN}),
]


# Lists: a JSON array becomes a tuple (lax), its items stay strict.
Origins = Annotated[tuple[Origin, ...], Field(strict=False), BeforeValidator(_no_wildcard)]
Networks = Annotated[tuple[Network, ...], Field(strict=False)]
ObjectNames = Annotated[tuple[ObjectName, ...], Field(strict=False)]
AgeRecipients = Annotated[
    tuple[AgeRecipient, ...],
    Field(strict=False, json_schema_extra={"minItems": 1}),
    # After the items: a list with a bad key gets that key's problem only.
    _checked(lambda keys: None if keys else "needs at least one age public key"),
]


# --- the models -------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )


class ComputeSettings(_Section):
    """Requests and limits of a service's main container."""

    cpu_request: Cpu
    memory_request: Memory
    cpu_limit: Cpu
    memory_limit: Memory


class AppCompute(ComputeSettings):
    """The app container's requests and limits."""

    cpu_request: Cpu = "100m"
    memory_request: Memory = "192Mi"
    cpu_limit: Cpu = "500m"
    memory_limit: Memory = "384Mi"


class PostgresCompute(ComputeSettings):
    """The database container's requests and limits."""

    cpu_request: Cpu = "250m"
    memory_request: Memory = "512Mi"
    cpu_limit: Cpu = "1"
    memory_limit: Memory = "1Gi"


class RedisCompute(ComputeSettings):
    """The cache container's requests and limits."""

    cpu_request: Cpu = "50m"
    memory_request: Memory = "128Mi"
    cpu_limit: Cpu = "250m"
    memory_limit: Memory = "256Mi"


def _image_optional_with_build(schema: dict[str, Any]) -> None:
    schema["required"] = [key for key in schema.get("required", ()) if key != "image"]
    schema["if"] = {"properties": {"build": {"const": True}}, "required": ["build"]}
    schema["else"] = {"required": ["image"]}


class CircuitBreakerSettings(_Section):
    """The app's circuit breakers around PostgreSQL and Redis (CIRCUIT_BREAKER_*)."""

    failures: int = Field(default=5, ge=1, le=1000)
    """Outages in a row that open a breaker."""
    cooldown_seconds: float = Field(default=5.0, gt=0, le=300, strict=False)
    """How long an open breaker refuses calls before one trial goes through."""


class TracingSettings(_Section):
    """OpenTelemetry tracing of the app (the OTEL_* variables); off without an endpoint."""

    otlp_endpoint: Url | None = None
    """A collector's OTLP/HTTP receiver, http(s)://host:4318 (spans go to <it>/v1/traces)."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1, strict=False)
    """Share of new traces kept (parentbased_traceidratio); a caller's decision is followed."""


class AppSettings(_Section):
    """The FastAPI workload."""

    model_config = ConfigDict(json_schema_extra=_image_optional_with_build)

    image: Image
    """Pinned image reference (a tag other than latest, or a digest; staging and production:
    a digest, which the deploy workflow sets); with `build`, the name and tag given to the local
    build (default safeguard-app:<stack>)."""
    build: bool = False
    """Build app/Dockerfile with pulumi-docker instead of pulling `image` (docker only)."""
    replicas: int = Field(default=1, ge=1)
    autoscale_max: int | None = Field(default=None, ge=1)
    """Upper bound of the HPA (from `replicas` up); unset: no autoscaling."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    allowed_origins: Origins = ()
    """Browser origins allowed by CORS, scheme://host[:port] each; never '*'."""
    resources: AppCompute = AppCompute()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    http_cache_max_age_seconds: int = Field(default=0, ge=0, le=86_400)
    """Cache-Control max-age of the API's GET answers (0: no-cache, clients revalidate)."""
    tracing: TracingSettings = TracingSettings()


class OffsiteSettings(_Section):
    """Encrypted copies of every dump in S3-compatible object storage. The job's credentials are
    the secrets backupAccessKeyId and backupSecretAccessKey."""

    endpoint: S3Endpoint
    """The store's S3 API, https://host[:port] (AWS: https://s3.<region>.amazonaws.com)."""
    bucket: Bucket
    region: Annotated[
        str,
        _checked(lambda region: None if region.strip() else "must not be empty"),
        Field(json_schema_extra={"minLength": 1}),
    ] = "us-east-1"
    """The region the requests are signed for (most S3-compatible stores take any)."""
    prefix: KeyPrefix = ""
    """Key prefix of the uploads, empty or ending in '/', such as safeguard/production/; the
    retention prunes only this prefix's dumps."""
    retention_days: int = Field(default=30, ge=1)
    """Uploads older than this are deleted after each verified upload."""
    recipients: AgeRecipients
    """age public keys (age1..., from age-keygen -y): any one of their private keys, kept off
    the cluster, decrypts a dump."""


class PostgresSettings(_Section):
    """The database and its backups."""

    storage_size: Size = "5Gi"
    backup_enabled: bool = True
    backup_schedule: Schedule = "30 2 * * *"
    """When the pg_dump CronJob runs: five fields as a Kubernetes CronJob takes them, or a
    descriptor such as @daily; in the cluster's time zone."""
    backup_retention_days: int = Field(default=7, ge=1)
    backup_storage_size: Size = "10Gi"
    restore_check_schedule: Schedule = "30 4 * * *"
    """When the restore check restores the newest dump into a throwaway PostgreSQL: after the
    backup's run, so that it checks the newest dump."""
    offsite: OffsiteSettings | None = None
    """Where every dump is copied, encrypted, off the cluster; unset: the dumps stay on the
    cluster's volume (refused in production)."""
    resources: PostgresCompute = PostgresCompute()


class RedisSettings(_Section):
    """The cache and rate-limit store."""

    storage_size: Size = "1Gi"
    resources: RedisCompute = RedisCompute()


def _internal_network_optional(schema: dict[str, Any]) -> None:
    # Its default depends on the platform, which one section of the file cannot see.
    schema["required"] = [key for key in schema.get("required", ()) if key != "internalNetwork"]
    if not schema["required"]:
        del schema["required"]


def _internal_network_problem(networks: tuple[str, ...]) -> str | None:
    if networks:
        return None
    return (
        "must name where nginx reaches the app from; empty, the app would take every client "
        "for nginx"
    )


class CertManagerSettings(_Section):
    """The cert-manager issuer that signs the edge's certificate."""

    issuer: ObjectName
    """Name of the Issuer (in the stack's namespace) or ClusterIssuer."""
    kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"


def _exactly_one_source(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [{"required": ["secret"]}, {"required": ["certManager"]}]


class TlsSettings(_Section):
    """Where the edge's certificate comes from: exactly one of `secret` and `certManager`."""

    model_config = ConfigDict(json_schema_extra=_exactly_one_source)

    secret: ObjectName | None = None
    """An existing Secret of type kubernetes.io/tls in the stack's namespace; it must exist
    before `pulumi up` (the program looks it up, and the preview fails without it)."""
    cert_manager: CertManagerSettings | None = None
    """cert-manager issues the certificate into Secret safeguard-<stack>-tls (a Certificate
    the program creates; cert-manager and the issuer must be installed)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> TlsSettings:
        if (self.secret is None) == (self.cert_manager is None):
            raise PydanticCustomError(
                "setting",
                "set exactly one of secret (an existing kubernetes.io/tls Secret) and "
                "certManager (an issuer that signs one)",
            )
        return self


class EdgeSettings(_Section):
    """nginx at the edge and how the outside world reaches it."""

    model_config = ConfigDict(json_schema_extra=_internal_network_optional)

    host: HostName = "localhost"
    """The name clients reach the service by; requests naming another host are refused."""
    tls: TlsSettings | None = None
    """Kubernetes: the certificate for `host`; unset: plain HTTP."""
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    ingress_class: ObjectName | None = None
    public_port: int = Field(default=8080, ge=1, le=65535)
    """Docker: the port published on 127.0.0.1."""
    trusted_proxies: Networks = ()
    """Networks of the load balancers in front of nginx whose X-Forwarded-For nginx believes."""
    internal_network: Annotated[Networks, _checked(_internal_network_problem)]
    """Where nginx's connections to the app come from; the app believes X-Forwarded-For from
    there only. Docker: the backend network's subnet (default 10.213.0.0/24); Kubernetes: the
    pod network (default the RFC 1918 ranges)."""
    rate_per_second: int = Field(default=20, ge=1)
    burst: int = Field(default=40, ge=0)
    connections_per_client: int = Field(default=20, ge=1, le=65535)
    client_max_body_size: Annotated[str, _checked(_body_size_problem)] = "1m"


class MonitoringSettings(_Section):
    """Prometheus, Alertmanager and Grafana."""

    prometheus_storage_size: Size = "10Gi"
    prometheus_retention: Annotated[str, _checked(_retention_problem)] = "15d"
    alertmanager_storage_size: Size = "1Gi"
    grafana_storage_size: Size = "1Gi"


class ImageSettings(_Section):
    """The third-party images the stack runs, where it pulls them from and with which
    credentials. Renovate proposes new versions of these defaults (renovate.json); a stack that
    sets its own keeps it until changed by hand."""

    registry_mirrors: Annotated[dict[Registry, MirrorPrefix], Field(strict=False)] = {}
    """Pull through mirrors: a registry (docker.io, quay.io) -> the prefix its paths are served
    under, such as harbor.example.com/dockerhub, which makes postgres:16.4-alpine
    harbor.example.com/dockerhub/library/postgres:16.4-alpine. Not the app's image."""
    pull_secrets: ObjectNames = ()
    """Kubernetes: Secrets of type kubernetes.io/dockerconfigjson in the namespace that every
    pod (the app's too) pulls its images with; they must exist before `pulumi up`."""
    postgres: Image = "postgres:16.4-alpine"
    """PostgreSQL; the backup image is built on the same version."""
    postgres_exporter: Image = "quay.io/prometheuscommunity/postgres-exporter:v0.15.0"
    redis: Image = "redis:7.4.1-alpine"
    redis_exporter: Image = "oliver006/redis_exporter:v1.62.0"
    nginx: Image = "nginxinc/nginx-unprivileged:1.27.2-alpine"
    """nginx built to run as a non-root user."""
    nginx_exporter: Image = "nginx/nginx-prometheus-exporter:1.3.0"
    prometheus: Image = "prom/prometheus:v2.54.1"
    alertmanager: Image = "prom/alertmanager:v0.27.0"
    grafana: Image = "grafana/grafana:11.2.2"
    pushgateway: Image = "prom/pushgateway:v1.5.1"
    """Where the backup jobs push their outcome for Prometheus; the version of Debian's
    prometheus-pushgateway, which the tests run."""
    backup: Image = "ghcr.io/example/safeguard-backup:0.1.0"
    """The backup and restore-check jobs' image, the project's own: built from
    components/files/backup-image/Dockerfile and pushed by hand (RELEASING.md), on the PostgreSQL
    version of `postgres`."""

    def pulled(self, image: str) -> str:
        """`image` as the stack pulls it: through its registry's mirror, if one is set."""
        return mirrored(image, self.registry_mirrors)


def _stack_keys_optional(schema: dict[str, Any]) -> None:
    # environment and namespace default from the stack's name, which the file does not hold;
    # edge has defaults for every key.
    schema["required"] = [
        key for key in schema.get("required", ()) if key not in ("environment", "namespace", "edge")
    ]


class Settings(_Section):
    """Everything the program needs for one stack: the `safeguard:*` keys of its config."""

    model_config = ConfigDict(json_schema_extra=_stack_keys_optional)

    platform: PlatformName = "kubernetes"
    environment: Environment
    """development, staging or production; dev, staging and production default to theirs."""
    namespace: Namespace
    """Kubernetes namespace (default safeguard-<stack>); never default or kube-*."""
    persistent_storage: ConfigBool = True
    """Data on volumes that outlive pods."""
    storage_class: ObjectName | None = None
    """StorageClass of the PVCs; unset: the cluster's default."""
    api_keys: ApiKeys | None = None
    """The app's API_KEYS, comma-separated (a secret); unset: POST and DELETE need no key."""
    alert_webhook_critical: WebhookUrl | None = None
    """Where Alertmanager sends severity=critical alerts (a secret)."""
    alert_webhook_warning: WebhookUrl | None = None
    """Where Alertmanager sends severity=warning alerts (a secret)."""
    backup_access_key_id: StoreCredential | None = None
    """The backup job's access key for postgres.offsite's bucket (a secret)."""
    backup_secret_access_key: StoreCredential | None = None
    """Its secret key (a secret)."""
    app: AppSettings
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    edge: EdgeSettings
    monitoring: MonitoringSettings = MonitoringSettings()
    images: ImageSettings = ImageSettings()

    _stack: str = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_the_stack(cls, data: Any, info: ValidationInfo) -> Any:
        """Defaults that depend on the stack's name or on another key."""
        if not isinstance(data, dict):
            return data
        stack = info.context["stack"]
        data = dict(data)
        if "environment" not in data and stack in DEFAULT_ENVIRONMENTS:
            data["environment"] = DEFAULT_ENVIRONMENTS[stack]
        data.setdefault("namespace", f"safeguard-{stack}")
        app = data.setdefault("app", {})
        if isinstance(app, dict) and "image" not in app and app.get("build") is True:
            data["app"] = {**app, "image": f"safeguard-app:{stack}"}
        edge = data.setdefault("edge", {})
        if isinstance(edge, dict) and "internalNetwork" not in edge:
            docker = data.get("platform") == "docker"
            default = [DOCKER_BACKEND_SUBNET] if docker else list(PRIVATE_NETWORKS)
            data["edge"] = {**edge, "internalNetwork": default}
        return data

    def model_post_init(self, context: Any, /) -> None:
        self._stack = context["stack"]

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def tls_secret(self) -> str | None:
        """The Secret holding the edge's certificate: the one `edge.tls.secret` names, or the
        one cert-manager issues into; None without TLS."""
        tls = self.edge.tls
        if tls is None:
            return None
        return tls.secret or f"safeguard-{self.stack}-tls"

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a reviewer should see although nothing is refused: missing alert webhooks and
        API keys outside development, a namespace another stack deploys into too."""
        return tuple(_warnings(self))


def as_secret(value: SecretStr | None) -> pulumi.Output[str] | None:
    """A secret setting as the secret output the program hands on; None stays None."""
    return None if value is None else pulumi.Output.secret(value.get_secret_value())


# --- rules across fields ----------------------------------------------------------------------

_Found = Iterator[tuple[str, str]]


@dataclass(frozen=True)
class _Rule:
    """A check over the validated settings that runs only when every key it reads is valid."""

    reads: tuple[str, ...]
    check: Callable[[Settings], _Found]


def _when(
    reads: tuple[str, ...],
    where: str,
    applies: Callable[[Settings], bool],
    message: str | Callable[[Settings], str],
) -> _Rule:
    """A rule with one problem: `message` about `where` when `applies`."""

    def check(s: Settings) -> _Found:
        if applies(s):
            yield where, message(s) if callable(message) else message

    return _Rule(reads, check)


def _request_within_limit(section: str, kind: str) -> _Rule:
    def check(s: Settings) -> _Found:
        compute: ComputeSettings = getattr(s, section).resources
        request, limit = getattr(compute, f"{kind}_request"), getattr(compute, f"{kind}_limit")
        if parse(request) > parse(limit):
            yield (
                f"{section}.resources.{kind}Request",
                f"{request} is more than the {kind} limit {limit}; Kubernetes refuses a request "
                "above its limit",
            )

    reads = (f"{section}.resources.{kind}Request", f"{section}.resources.{kind}Limit")
    return _Rule(reads, check)


def _docker_compute(section: str, name: str, key: str) -> _Rule:
    # The Docker back end gives a container whole MiB of memory and a number of CPUs.
    convert = memory_mb if name.startswith("memory") else cpu_cores

    def check(s: Settings) -> _Found:
        if s.platform != "docker":
            return
        try:
            convert(getattr(getattr(s, section).resources, name))
        except ValueError as error:
            yield f"{section}.resources.{key}", f"on docker, {error}"

    return _Rule(("platform", f"{section}.resources.{key}"), check)


def _one_ipv4_subnet(networks: tuple[str, ...]) -> bool:
    return len(networks) == 1 and ipaddress.ip_network(networks[0]).version == 4


_COMPUTE_SECTIONS = ("app", "postgres", "redis")
_RELEASED = ("staging", "production")
"""The environments that run only what the deploy workflow released: its image, by digest."""
_RULES = (
    _when(
        ("app.replicas", "app.autoscaleMax"),
        "app.autoscaleMax",
        lambda s: s.app.autoscale_max is not None and s.app.autoscale_max < s.app.replicas,
        lambda s: f"must be at least app.replicas ({s.app.replicas})",
    ),
    *(
        _request_within_limit(section, kind)
        for section in _COMPUTE_SECTIONS
        for kind in ("cpu", "memory")
    ),
    *(
        _docker_compute(section, name, to_camel(name))
        for section in _COMPUTE_SECTIONS
        for name in ComputeSettings.model_fields
    ),
    # What one Docker host cannot do.
    _when(
        ("platform", "edge.internalNetwork"),
        "edge.internalNetwork",
        lambda s: s.platform == "docker" and not _one_ipv4_subnet(s.edge.internal_network),
        lambda s: (
            "on docker, one IPv4 subnet for the backend network, got "
            f"{list(s.edge.internal_network)}"
        ),
    ),
    _when(
        ("platform", "app.replicas", "app.autoscaleMax"),
        "app.replicas",
        lambda s: (
            s.platform == "docker" and (s.app.replicas != 1 or s.app.autoscale_max is not None)
        ),
        "Docker runs one container per service; use replicas 1 and no autoscaleMax",
    ),
    _when(
        ("platform", "postgres.backupEnabled"),
        "postgres.backupEnabled",
        lambda s: s.platform == "docker" and s.postgres.backup_enabled,
        "scheduled backups need the kubernetes platform (CronJob); set false on docker",
    ),
    _when(
        ("platform", "edge.tls", "edge.ingressClass"),
        "edge",
        lambda s: s.platform == "docker" and (s.edge.tls is not None or bool(s.edge.ingress_class)),
        "tls and ingressClass exist only on the kubernetes platform",
    ),
    _when(
        ("platform", "images.pullSecrets"),
        "images.pullSecrets",
        lambda s: s.platform == "docker" and bool(s.images.pull_secrets),
        "exist only on the kubernetes platform; on docker the daemon pulls with its own logins "
        "(docker login on the host, or the provider's docker:registryAuth)",
    ),
    _when(
        ("platform", "app.build"),
        "app.build",
        lambda s: s.platform == "kubernetes" and s.app.build,
        "a cluster cannot run an image built on this machine; push it and set app.image",
    ),
    # What staging and production demand on top: the release the pipeline built and scanned.
    _when(
        ("environment", "app.image"),
        "app.image",
        lambda s: s.environment in _RELEASED and image_digest(s.app.image) is None,
        lambda s: (
            f"{s.environment} runs the app by digest (<repository>@sha256:<digest>), not the "
            f"tag {s.app.image!r}, which may point to other bytes tomorrow; the deploy workflow "
            "sets the release's digest (RELEASING.md)"
        ),
    ),
    # What production demands on top.
    _when(
        ("environment", "app.replicas"),
        "app.replicas",
        lambda s: s.is_production and s.app.replicas < 2,
        lambda s: f"production needs at least 2, got {s.app.replicas}",
    ),
    _when(
        ("environment", "app.allowedOrigins"),
        "app.allowedOrigins",
        lambda s: s.is_production and not s.app.allowed_origins,
        "production needs explicit origins",
    ),
    _when(
        ("environment", "edge.tls"),
        "edge.tls",
        lambda s: s.is_production and s.edge.tls is None,
        "production needs TLS; set tls.certManager (an issuer) or tls.secret (an existing Secret)",
    ),
    _when(
        ("environment", "persistentStorage"),
        "persistentStorage",
        lambda s: s.is_production and not s.persistent_storage,
        "production needs persistent storage",
    ),
    _when(
        ("environment", "platform"),
        "platform",
        lambda s: s.is_production and s.platform != "kubernetes",
        "production runs on kubernetes",
    ),
    _when(
        ("environment", "postgres.backupEnabled"),
        "postgres.backupEnabled",
        lambda s: s.is_production and not s.postgres.backup_enabled,
        "production needs backups",
    ),
    _when(
        ("environment", "postgres.backupEnabled", "postgres.offsite"),
        "postgres.offsite",
        lambda s: s.is_production and s.postgres.backup_enabled and s.postgres.offsite is None,
        "production needs off-site copies of its dumps: name the bucket and the age public key "
        "(docs/backup-restore.md)",
    ),
    # Nothing set is silently unused.
    _when(
        ("postgres.backupEnabled", "postgres.offsite"),
        "postgres.offsite",
        lambda s: not s.postgres.backup_enabled and s.postgres.offsite is not None,
        "is set but postgres.backupEnabled is false: there are no dumps to copy",
    ),
    *(
        _when(
            (key, "postgres.offsite"),
            key,
            lambda s, name=name: getattr(s, name) is not None and s.postgres.offsite is None,
            "is set but postgres.offsite is not: no backup uses it",
        )
        for key, name in (
            ("backupAccessKeyId", "backup_access_key_id"),
            ("backupSecretAccessKey", "backup_secret_access_key"),
        )
    ),
)


def _overlaps(path: str, other: str) -> bool:
    return path == other or path.startswith(f"{other}.") or other.startswith(f"{path}.")


def _rule_problems(settings: Settings, invalid: set[str]) -> list[str]:
    return [
        f"{NAMESPACE}:{where}: {message}"
        for rule in _RULES
        if not any(_overlaps(read, bad) for read in rule.reads for bad in invalid)
        for where, message in rule.check(settings)
    ]


# --- warnings ---------------------------------------------------------------------------------


def _warnings(s: Settings) -> Iterator[str]:
    if s.environment != "development":
        if s.alert_webhook_critical is None:
            yield (
                f"{NAMESPACE}:alertWebhookCritical is not set: critical alerts reach no one "
                f"(pulumi config set --secret {NAMESPACE}:alertWebhookCritical <url>)"
            )
        if s.alert_webhook_warning is None:
            yield (
                f"{NAMESPACE}:alertWebhookWarning is not set: warning alerts reach no one "
                f"(pulumi config set --secret {NAMESPACE}:alertWebhookWarning <url>)"
            )
        if s.api_keys is None:
            yield (
                f"{NAMESPACE}:apiKeys is not set: anyone who reaches the API can POST and "
                f"DELETE (pulumi config set --secret {NAMESPACE}:apiKeys 'key-one,key-two')"
            )
    if s.postgres.backup_enabled and s.postgres.offsite is not None:
        for key, value in (
            ("backupAccessKeyId", s.backup_access_key_id),
            ("backupSecretAccessKey", s.backup_secret_access_key),
        ):
            if value is None:
                yield (
                    f"{NAMESPACE}:{key} is not set: every backup fails after its local dump, "
                    f"uploading nothing, until it is (pulumi config set --secret "
                    f"{NAMESPACE}:{key} ...)"
                )
    if s.platform == "kubernetes":
        for other in _stacks_in_namespace(s.namespace, besides=s.stack):
            yield (
                f"{NAMESPACE}:namespace: stack {other!r} (Pulumi.{other}.yaml) deploys into "
                f"{s.namespace!r} too; on one cluster the two stacks would replace each "
                f"other's resources: give this stack a namespace of its own"
            )


def _stacks_in_namespace(namespace: str, *, besides: str) -> Iterator[str]:
    """The project's other Kubernetes stacks that deploy into `namespace`."""
    for path in sorted(PROJECT_ROOT.glob("Pulumi.*.yaml")):
        other = path.name[len("Pulumi.") : -len(".yaml")]
        if other == besides:
            continue
        try:
            config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError, AttributeError):
            # That stack's own run reports its broken file; here it shares nothing.
            continue
        if not isinstance(config, dict):
            continue
        if config.get(f"{NAMESPACE}:platform", "kubernetes") != "kubernetes":
            continue
        if config.get(f"{NAMESPACE}:namespace", f"safeguard-{other}") == namespace:
            yield other


# --- reading and reporting --------------------------------------------------------------------

_MISSING = {
    "environment": "required for a stack not named dev, staging or production: development, "
    "staging or production",
    "app.image": "required (or set app.build to true)",
}
# What stands in for a required value that is missing or invalid while the rules that do not
# read it run; those that read it are skipped.
_STAND_INS: dict[str, Any] = {
    "environment": "development",
    "app": {"image": "stand-in.invalid/app:0"},
    "app.image": "stand-in.invalid/app:0",
    "edge": {},
    "edge.internalNetwork": [DOCKER_BACKEND_SUBNET],
}


def _sections() -> set[str]:
    return {
        field.alias or name
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


def _config_keys() -> set[str]:
    """Every config key the program was given. pulumi.Config reads one named key at a time;
    the SDK's runtime/config.py keeps the whole map where mocks and the automation API set it
    (CONFIG) and reads the engine's from PULUMI_CONFIG, which the language host sets."""
    return set(CONFIG.get()) | set(get_config_env())


def _raw_config(config: pulumi.Config) -> tuple[dict[str, Any], list[str]]:
    """The `safeguard:*` keys as the models take them (objects parsed), and what could not be
    read."""
    problems: list[str] = []
    raw: dict[str, Any] = {}
    sections = _sections()
    for full in sorted(_config_keys()):
        namespace, _, key = full.partition(":")
        if namespace != NAMESPACE:
            if difflib.SequenceMatcher(None, namespace.lower(), NAMESPACE).ratio() >= 0.8:
                problems.append(
                    f"{full}: unknown config namespace {namespace!r}; did you mean "
                    f"{NAMESPACE}:{key}?"
                )
            continue
        text = config.get(key)
        if text is None:
            continue
        if key in sections and text.lstrip().startswith(("{", "[")):
            try:
                raw[key] = json.loads(text)
            except json.JSONDecodeError as error:
                problems.append(f"{full}: not valid JSON ({error.msg})")
            continue
        raw[key] = text
    return raw, problems


def load_settings(stack: str | None = None) -> Settings:
    """Read and validate the current stack's settings; raise SettingsError listing all problems."""
    stack = stack or pulumi.get_stack()
    raw, problems = _raw_config(pulumi.Config(NAMESPACE))
    settings, invalid, found = _validate(raw, stack)
    problems += found
    if not (PACK_CONFIG_DIR / f"{stack}.json").is_file():
        problems.append(
            f"policies/config/{stack}.json is missing: every stack needs the policy pack's "
            "config (start from a copy of staging.json or production.json; see docs/stacks.md, "
            "Adding a stack)"
        )
    if settings is not None:
        problems += _rule_problems(settings, invalid)
    if problems or settings is None:
        raise SettingsError(stack, problems)
    return settings


def _validate(raw: dict[str, Any], stack: str) -> tuple[Settings | None, set[str], list[str]]:
    """The settings, the keys found invalid, and the problems with them.

    When keys are invalid, the settings are validated again without them (defaults, or a stand-in
    for a required key, in their place) so that the rules reading only valid keys still run.
    """
    context = {"stack": stack}
    try:
        return Settings.model_validate(raw, context=context), set(), []
    except ValidationError as error:
        problems = [_problem(e, stack) for e in error.errors(include_url=False)]
        invalid = {_field_path(e["loc"]) for e in error.errors()}
    data = raw
    for _ in range(4):
        data = _without(data, invalid)
        try:
            return Settings.model_validate(data, context=context), invalid, problems
        except ValidationError as error:
            more = {_field_path(e["loc"]) for e in error.errors()}
        if more <= invalid:
            break
        invalid |= more
    return None, invalid, problems


def _without(data: Mapping[str, Any], invalid: Iterable[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data))
    for path in invalid:
        *parents, last = path.split(".")
        node: Any = result
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        node.pop(last, None)
        if path in _STAND_INS:
            node[last] = json.loads(json.dumps(_STAND_INS[path]))
    return result


_KEY = "[key]"
"""What pydantic appends to the location of a mapping's key it refuses: the key itself is named."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    """The dotted key of the setting an error is about: its list index left out."""
    return ".".join(str(part) for part in loc if isinstance(part, str) and part != _KEY)


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if part == _KEY:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds, an optional one (`TlsSettings | None`) included."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _model_at(path: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in path:
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        found = _section_model(fields[part].annotation) if part in fields else None
        if found is None:
            return None
        model = found
    return model


_REPLACED = {"edge.tlsSecret": "edge.tls.secret (or edge.tls.certManager for cert-manager)"}
"""Keys of earlier versions of the stack file, and what took their place."""


def _unknown(loc: tuple[int | str, ...]) -> str:
    if (replaced := _REPLACED.get(_field_path(loc))) is not None:
        return f"replaced by {NAMESPACE}:{replaced}"
    *parents, key = [str(part) for part in loc]
    model = _model_at(parents)
    known = sorted(field.alias or name for name, field in (model or Settings).model_fields.items())
    prefix = f"{NAMESPACE}:" + "".join(f"{parent}." for parent in parents)
    by_lower = {name.lower(): name for name in known}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    if close:
        return f"unknown setting; did you mean {prefix}{by_lower[close[0]]}?"
    return f"unknown setting (known: {', '.join(known)})"


def _kind(value: Any) -> str:
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "list",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


_SHAPES = {
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}
_TYPES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
}


def _expected(kind: str, context: Mapping[str, Any]) -> str | None:
    """pydantic's error, as the house words it; None: pydantic's own message."""
    if kind == "literal_error":
        return "must be one of " + context["expected"].replace("'", "").replace(" or ", ", ")
    if kind == "greater_than_equal":
        return f"must be at least {context['ge']}"
    if kind == "greater_than":
        return f"must be more than {context['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {context['le']}"
    return _TYPES.get(kind)


def _problem(error: Mapping[str, Any], stack: str) -> str:
    loc = error["loc"]
    where = _where(loc)
    kind, value = error["type"], error.get("input")
    secret = bool(loc) and loc[0] in SECRET_KEYS
    shown = "" if secret else f", got {value!r}"
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        message = _unknown(loc)
    elif kind == "missing":
        message = _MISSING.get(_field_path(loc), "required")
        if where == "environment":
            message = f"{message} (stack {stack!r})"
    elif kind in _SHAPES:
        message = f"{_SHAPES[kind]}, got {_kind(value)}"
    elif kind == "setting":
        message = str(error["msg"])
    else:
        message = f"{_expected(kind, context) or error['msg']}{shown}"
    return f"{NAMESPACE}:{where}: {message}"
