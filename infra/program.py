"""The Pulumi program: picks the platform for the stack and wires the components together.

`run(settings)` registers every resource and exports the stack outputs; it is what the root
`__main__.py` calls under the real engine, and what the tests and `python -m infra render` call
under mocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pulumi

from components.app_service import AppService, AppServiceArgs
from components.backups import BackupPolicy, OffsiteCopy, RestoreCheck, scheduled_job_names
from components.monitoring import Monitoring, MonitoringArgs
from components.nginx import Nginx, NginxArgs
from components.postgres import Postgres, PostgresArgs
from components.prometheus import ScrapeTarget
from components.pushgateway import Pushgateway, PushgatewayArgs
from components.redis import Redis, RedisArgs
from infra.platforms.docker import DockerPlatform, prepare_networks
from infra.platforms.kubernetes import KubernetesPlatform, prepare_namespace
from infra.platforms.kubernetes.tls import existing_secret, issued_certificate
from spec.platform import Platform
from spec.service import Compute
from stacks.settings import ComputeSettings, Settings, as_secret


def _compute(c: ComputeSettings) -> Compute:
    return Compute(
        cpu_request=c.cpu_request,
        memory_request=c.memory_request,
        cpu_limit=c.cpu_limit,
        memory_limit=c.memory_limit,
    )


def _platform(settings: Settings) -> Platform:
    instance = settings.stack
    if settings.platform == "docker":
        backend, edge = prepare_networks(
            f"safeguard-{instance}", backend_subnet=settings.edge.internal_network[0]
        )
        return DockerPlatform(instance=f"safeguard-{instance}", backend=backend, edge=edge)
    namespace = prepare_namespace(settings.namespace, instance)
    return KubernetesPlatform(
        namespace=namespace.metadata.name,
        instance=instance,
        storage_class=settings.storage_class,
        public_service_type=settings.edge.service_type,
        ingress_class=settings.edge.ingress_class,
        host=settings.edge.host,
        tls_secret=settings.tls_secret,
        tls_source=_tls_source(settings, namespace.metadata.name),
        image_pull_secrets=settings.images.pull_secrets,
    )


def _tls_source(settings: Settings, namespace: pulumi.Output[str]) -> pulumi.Resource | None:
    """What provides the edge's certificate Secret: cert-manager's Certificate, or the lookup
    of the Secret the stack names."""
    tls, secret = settings.edge.tls, settings.tls_secret
    if tls is None or secret is None:
        return None
    if tls.cert_manager is not None:
        return issued_certificate(
            namespace=namespace,
            instance=settings.stack,
            secret_name=secret,
            host=settings.edge.host,
            issuer=tls.cert_manager.issuer,
            issuer_kind=tls.cert_manager.kind,
        )
    return existing_secret(settings.namespace, secret)


def edge_args(
    settings: Settings,
    platform: Platform,
    upstream: pulumi.Input[str],
    after: Sequence[pulumi.Resource] = (),
) -> NginxArgs:
    """The edge proxy's args for the stack, proxying to `upstream` (the app's address), created
    `after` it; the tests render the same nginx.conf from them."""
    edge = settings.edge
    return NginxArgs(
        platform=platform,
        upstream=upstream,
        server_name=edge.host,
        trusted_proxies=edge.trusted_proxies,
        allowed_origins=settings.app.allowed_origins,
        rate_per_second=edge.rate_per_second,
        burst=edge.burst,
        connections_per_client=edge.connections_per_client,
        client_max_body_size=edge.client_max_body_size,
        image=settings.images.pulled(settings.images.nginx),
        exporter_image=settings.images.pulled(settings.images.nginx_exporter),
        tls_secret=settings.tls_secret,
        tls_at_ingress=edge.ingress_class is not None,
        replicas=1 if settings.platform == "docker" else 2,
        public_port=edge.public_port,
        after=after,
    )


def _backup_policy(settings: Settings, pushgateway: Pushgateway | None) -> BackupPolicy:
    postgres, images = settings.postgres, settings.images
    offsite = postgres.offsite
    return BackupPolicy(
        schedule=postgres.backup_schedule,
        retention_days=postgres.backup_retention_days,
        storage_size=postgres.backup_storage_size,
        image=images.pulled(images.backup),
        offsite=OffsiteCopy(
            endpoint=offsite.endpoint,
            bucket=offsite.bucket,
            region=offsite.region,
            prefix=offsite.prefix,
            retention_days=offsite.retention_days,
            recipients=offsite.recipients,
            access_key_id=as_secret(settings.backup_access_key_id),
            secret_access_key=as_secret(settings.backup_secret_access_key),
        )
        if offsite is not None
        else None,
        restore_check=RestoreCheck(schedule=postgres.restore_check_schedule),
        push_url=pushgateway.url if pushgateway is not None else None,
    )


def run(settings: Settings) -> None:
    """Register the whole system for one stack and export its outputs."""
    platform = _platform(settings)
    persistent = settings.persistent_storage
    images = settings.images

    backups = settings.postgres.backup_enabled
    # Only the database's scheduled jobs push; without them there is nothing to gateway.
    pushgateway = (
        Pushgateway(
            "pushgateway",
            PushgatewayArgs(
                platform=platform,
                pushers=scheduled_job_names("postgres"),
                storage_size="1Gi" if persistent else None,
                image=images.pulled(images.pushgateway),
            ),
        )
        if backups
        else None
    )
    database = Postgres(
        "postgres",
        PostgresArgs(
            platform=platform,
            compute=_compute(settings.postgres.resources),
            storage_size=settings.postgres.storage_size if persistent else None,
            backup=_backup_policy(settings, pushgateway) if backups else None,
            image=images.pulled(images.postgres),
            exporter_image=images.pulled(images.postgres_exporter),
        ),
    )
    cache = Redis(
        "redis",
        RedisArgs(
            platform=platform,
            compute=_compute(settings.redis.resources),
            storage_size=settings.redis.storage_size if persistent else None,
            image=images.pulled(images.redis),
            exporter_image=images.pulled(images.redis_exporter),
        ),
    )
    app = AppService(
        "app",
        AppServiceArgs(
            platform=platform,
            image=settings.app.image,
            # Relative, so the recorded inputs do not depend on where the checkout lives.
            build_context=Path(".") if settings.app.build else None,
            environment=settings.environment,
            database_url=database.url,
            redis_url=cache.url,
            api_keys=as_secret(settings.api_keys),
            compute=_compute(settings.app.resources),
            replicas=settings.app.replicas,
            autoscale_max=settings.app.autoscale_max,
            allowed_origins=settings.app.allowed_origins,
            trusted_proxies=settings.edge.internal_network,
            log_level=settings.app.log_level,
            circuit_breaker_failures=settings.app.circuit_breaker.failures,
            circuit_breaker_cooldown_seconds=settings.app.circuit_breaker.cooldown_seconds,
            http_cache_max_age_seconds=settings.app.http_cache_max_age_seconds,
            otlp_endpoint=settings.app.tracing.otlp_endpoint,
            trace_sample_ratio=settings.app.tracing.sample_ratio,
            after=(database, cache),
        ),
    )
    edge_proxy = Nginx("nginx", edge_args(settings, platform, upstream=app.address, after=(app,)))
    monitoring_settings = settings.monitoring
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            platform=platform,
            environment=settings.environment,
            namespace=settings.namespace if settings.platform == "kubernetes" else None,
            targets=(
                ScrapeTarget(job="app", address=app.metrics_target),
                ScrapeTarget(job="nginx", address=edge_proxy.metrics_target),
                ScrapeTarget(job="postgres", address=database.metrics_target),
                ScrapeTarget(job="redis", address=cache.metrics_target),
                *(
                    [
                        ScrapeTarget(
                            job="pushgateway",
                            address=pushgateway.metrics_target,
                            honor_labels=True,
                        )
                    ]
                    if pushgateway is not None
                    else []
                ),
            ),
            prometheus_storage_size=monitoring_settings.prometheus_storage_size
            if persistent
            else None,
            retention=monitoring_settings.prometheus_retention,
            alertmanager_storage_size=monitoring_settings.alertmanager_storage_size
            if persistent
            else None,
            grafana_storage_size=monitoring_settings.grafana_storage_size if persistent else None,
            critical_webhook=as_secret(settings.alert_webhook_critical),
            warning_webhook=as_secret(settings.alert_webhook_warning),
            prometheus_image=images.pulled(images.prometheus),
            alertmanager_image=images.pulled(images.alertmanager),
            grafana_image=images.pulled(images.grafana),
        ),
    )
    # `pulumi preview` and `up` show these; the offline check lists them in its report.
    for warning in settings.warnings:
        pulumi.log.warn(warning)

    on_docker = settings.platform == "docker"
    pulumi.export("platform", settings.platform)
    pulumi.export("environment", settings.environment)
    pulumi.export("namespace", None if on_docker else settings.namespace)
    pulumi.export("public_url", edge_proxy.url)
    pulumi.export(
        "grafana_url",
        "http://127.0.0.1:3000"
        if on_docker
        else f"kubectl -n {settings.namespace} port-forward svc/grafana 3000  ->  http://127.0.0.1:3000",
    )
    pulumi.export(
        "prometheus_url",
        "http://127.0.0.1:9090"
        if on_docker
        else f"kubectl -n {settings.namespace} port-forward svc/prometheus 9090  ->  http://127.0.0.1:9090",
    )
    pulumi.export("grafana_admin_user", "admin")
    pulumi.export("grafana_admin_password", monitoring.grafana_admin_password)
    pulumi.export(
        "postgres",
        {
            "host": database.host,
            "port": database.port,
            "database": database.database,
            "user": database.user,
        },
    )
    pulumi.export("postgres_url", database.url)
    pulumi.export("redis", {"host": cache.host, "port": cache.port})
    pulumi.export("redis_url", cache.url)
    pulumi.export("app_image", app.image)
