"""The FastAPI app: its image (pulled, or built from app/Dockerfile), a migrations init step,
plain settings in a ConfigMap and credentials in a Secret, probes on the app's health routes,
and scaling (replicas, PodDisruptionBudget, HPA) as the stack asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.common import TMP, TMP_MOUNT, secret_password
from spec.addresses import network_problem, url_problem
from spec.images import is_pinned_image
from spec.platform import Platform
from spec.probes import HttpGet, Probe, Probes
from spec.service import Autoscaling, Compute, Container, Ingress, Port, ServiceSpec

PORT = 8000
UID = 10001
STARTUP_PATH = "/health/startup"
READY_PATH = "/health/ready"
LIVE_PATH = "/health/live"
METRICS_PATH = "/metrics"
APP_ENVIRONMENTS = ("development", "staging", "production")
SHUTDOWN_DELAY_SECONDS = 3
"""After SIGTERM, readiness fails this long before the listener closes (SHUTDOWN_DELAY_SECONDS)."""
SHUTDOWN_DRAIN_SECONDS = 20
"""Then in-flight requests get this long to finish (SHUTDOWN_DRAIN_SECONDS)."""
STOP_GRACE_SECONDS = SHUTDOWN_DELAY_SECONDS + SHUTDOWN_DRAIN_SECONDS + 7
"""SIGTERM to SIGKILL: the delay and the drain, then up to 5 s for the pools to close (app/db.py)
and the process to exit."""


@dataclass(frozen=True, kw_only=True)
class AppServiceArgs:
    """Settings of the app."""

    platform: Platform
    """Back end that turns the description into resources."""
    image: str
    """Pinned image reference; with `build_context`, the name and tag of the local build."""
    environment: str
    """APP_ENV: development, staging or production."""
    database_url: pulumi.Input[str]
    """postgresql:// URL with credentials; kept in the Secret."""
    redis_url: pulumi.Input[str]
    """redis:// URL with the password; kept in the Secret."""
    compute: Compute
    """Requests and limits of the app container."""
    replicas: int = 1
    """Pods (the HPA's minimum when autoscaling)."""
    autoscale_max: int | None = None
    """HPA maximum; None: no HPA."""
    allowed_origins: tuple[str, ...] = ()
    """CORS allowlist (ALLOWED_ORIGINS)."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks the app's callers connect from (where nginx's connections come from): only from
    these does the app take the client address from X-Forwarded-For (FORWARDED_ALLOW_IPS).
    Empty: from nowhere; the connecting address is the client's."""
    api_keys: pulumi.Input[str] | None = None
    """Comma-separated API keys (secret); None: the app runs without any."""
    log_level: str = "INFO"
    """LOG_LEVEL."""
    circuit_breaker_failures: int = 5
    """CIRCUIT_BREAKER_FAILURES: outages in a row that open a breaker."""
    circuit_breaker_cooldown_seconds: float = 5.0
    """CIRCUIT_BREAKER_COOLDOWN_SECONDS."""
    http_cache_max_age_seconds: int = 0
    """HTTP_CACHE_MAX_AGE_SECONDS: max-age of the API's GET answers (0: no-cache)."""
    otlp_endpoint: str | None = None
    """OTEL_EXPORTER_OTLP_ENDPOINT: tracing on, towards this collector; None: off."""
    trace_sample_ratio: float = 1.0
    """OTEL_TRACES_SAMPLER_ARG of parentbased_traceidratio."""
    build_context: Path | None = None
    """Build the image from this directory's app/Dockerfile instead of pulling `image`;
    relative paths are relative to the project directory, where Pulumi runs the program."""
    callers: tuple[str, ...] = ("nginx",)
    """Services allowed to send requests."""
    scrapers: tuple[str, ...] = ("prometheus",)
    """Services allowed to read /metrics."""
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources the app needs before its migrations can run (the databases)."""

    def __post_init__(self) -> None:
        problems = []
        if not is_pinned_image(self.image):
            problems.append(f"image {self.image!r} must be pinned (a tag other than latest)")
        if self.environment not in APP_ENVIRONMENTS:
            problems.append(f"environment must be one of {APP_ENVIRONMENTS}")
        if self.replicas < 1:
            problems.append("replicas must be at least 1")
        if self.autoscale_max is not None and self.autoscale_max < self.replicas:
            problems.append("autoscale_max must be at least replicas")
        if "*" in self.allowed_origins:
            problems.append("allowed_origins must list origins, never '*'")
        if self.circuit_breaker_failures < 1 or self.circuit_breaker_cooldown_seconds <= 0:
            problems.append("circuit breaker: failures at least 1, cooldown above 0")
        if self.http_cache_max_age_seconds < 0:
            problems.append("http_cache_max_age_seconds must not be negative")
        if not 0 <= self.trace_sample_ratio <= 1:
            problems.append("trace_sample_ratio must be within 0..1")
        if self.otlp_endpoint is not None and (p := url_problem(self.otlp_endpoint)) is not None:
            problems.append(f"otlp_endpoint {p}")
        problems += [p for n in self.trusted_proxies if (p := network_problem(n)) is not None]
        if problems:
            raise ValueError("AppServiceArgs: " + "; ".join(problems))


class AppService(pulumi.ComponentResource):
    """The app behind nginx."""

    address: pulumi.Output[str]
    """host:port the app serves HTTP on inside the platform."""
    metrics_target: pulumi.Output[str]
    """host:port Prometheus scrapes /metrics from."""
    image: pulumi.Output[str]
    """The image reference the app runs."""

    def __init__(
        self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("safeguard:components:AppService", name, None, opts)
        image: pulumi.Input[str] = args.image
        if args.build_context is not None:
            image = docker.Image(
                f"{name}-image",
                image_name=args.image,
                build={
                    "context": str(args.build_context),
                    "dockerfile": str(args.build_context / "app" / "Dockerfile"),
                },
                skip_push=True,
                opts=pulumi.ResourceOptions(parent=self),
            ).image_name
        secret_key = secret_password(f"{name}-secret-key", self, length=48)
        deployed = args.platform.deploy(
            _service(name, args, image, secret_key), parent=self, depends_on=args.after
        )

        self.address = pulumi.Output.from_input(f"{deployed.host}:{PORT}")
        self.metrics_target = self.address
        self.image = pulumi.Output.from_input(image)
        self.register_outputs(
            {"address": self.address, "metrics_target": self.metrics_target, "image": self.image}
        )


def probes() -> Probes:
    """The app's health routes: startup covers migrations-free boot, readiness checks the
    dependencies, liveness only the process."""
    return Probes(
        startup=Probe(
            check=HttpGet(path=STARTUP_PATH, port=PORT), period_seconds=2, failure_threshold=60
        ),
        readiness=Probe(check=HttpGet(path=READY_PATH, port=PORT), period_seconds=5),
        liveness=Probe(
            check=HttpGet(path=LIVE_PATH, port=PORT), period_seconds=10, failure_threshold=3
        ),
    )


def _service(
    name: str, args: AppServiceArgs, image: pulumi.Input[str], secret_key: pulumi.Output[str]
) -> ServiceSpec:
    env = {
        "APP_ENV": args.environment,
        "LOG_LEVEL": args.log_level,
        "PORT": str(PORT),
        "ALLOWED_ORIGINS": ",".join(args.allowed_origins),
        # The init step migrates before any new pod starts; replicas racing to migrate on
        # startup is exactly what it avoids.
        "MIGRATE_ON_STARTUP": "false",
        # nginx replaces X-Forwarded-For with the client address it decided on; only a peer in
        # these networks is believed, so a client reaching the app another way cannot pick its
        # own address (and rate-limit bucket).
        "FORWARDED_ALLOW_IPS": ",".join(args.trusted_proxies),
        # Stated here, not left to the app's defaults: the stop grace period is derived from them.
        "SHUTDOWN_DELAY_SECONDS": str(SHUTDOWN_DELAY_SECONDS),
        "SHUTDOWN_DRAIN_SECONDS": str(SHUTDOWN_DRAIN_SECONDS),
        "CIRCUIT_BREAKER_FAILURES": str(args.circuit_breaker_failures),
        "CIRCUIT_BREAKER_COOLDOWN_SECONDS": f"{args.circuit_breaker_cooldown_seconds:g}",
        "HTTP_CACHE_MAX_AGE_SECONDS": str(args.http_cache_max_age_seconds),
    }
    if args.otlp_endpoint is not None:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": args.otlp_endpoint,
            "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={args.environment}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": f"{args.trace_sample_ratio:g}",
        }
    secrets: dict[str, pulumi.Input[str]] = {
        "DATABASE_URL": pulumi.Output.secret(args.database_url),
        "REDIS_URL": pulumi.Output.secret(args.redis_url),
        "SECRET_KEY": secret_key,
    }
    if args.api_keys is not None:
        secrets["API_KEYS"] = pulumi.Output.secret(args.api_keys)
    secret_env = {key: key for key in secrets}
    # The app reads each setting from the file its <NAME>_FILE names instead (app/settings.py).
    secret_files = {f"{key}_FILE": key for key in secrets}

    # The migrations need the database and nothing else: no Redis, no keys.
    migrate = Container(
        name="migrate",
        image=image,
        uid=UID,
        gid=UID,
        compute=args.compute,
        command=("python", "-m", "app", "migrate"),
        env={k: env[k] for k in ("APP_ENV", "LOG_LEVEL")},
        secret_env={"DATABASE_URL": "DATABASE_URL"},
        secret_files={"DATABASE_URL_FILE": "DATABASE_URL"},
        mounts=(TMP_MOUNT,),
        http_client="python",
    )
    server = Container(
        name="app",
        image=image,
        uid=UID,
        gid=UID,
        compute=args.compute,
        command=("python", "-m", "app"),
        ports=(Port(name="http", port=PORT),),
        env=env,
        secret_env=secret_env,
        secret_files=secret_files,
        probes=probes(),
        mounts=(TMP_MOUNT,),
        http_client="python",
        stop_grace_seconds=STOP_GRACE_SECONDS,
    )
    autoscaling = (
        Autoscaling(min_replicas=args.replicas, max_replicas=args.autoscale_max)
        if args.autoscale_max is not None
        else None
    )
    return ServiceSpec(
        name=name,
        containers=(server,),
        init_containers=(migrate,),
        replicas=args.replicas,
        volumes=(TMP,),
        secrets=secrets,
        service_ports=(Port(name="http", port=PORT),),
        ingress=(Ingress(from_services=(*args.callers, *args.scrapers), ports=(PORT,)),),
        autoscaling=autoscaling,
        min_available=1 if args.replicas > 1 else None,
    )
