"""Components built one at a time under mocks: their args refuse bad values before any child
exists, a lone component keeps its credentials secret, and consumers reach a component at the
address it exposes."""

from __future__ import annotations

from datetime import timedelta

import pulumi
import pytest
import yaml

from components.app_service import AppService, AppServiceArgs
from components.backups import (
    BackupPolicy,
    OffsiteCopy,
    RestoreCheck,
    max_age_seconds,
)
from components.monitoring import Monitoring, MonitoringArgs
from components.nginx import Nginx, NginxArgs
from components.postgres import PostgresArgs
from components.prometheus import ScrapeTarget
from components.pushgateway import PushgatewayArgs
from components.redis import Redis, RedisArgs
from infra.platforms.kubernetes import KubernetesPlatform
from spec.service import Compute
from stacks.settings import ImageSettings
from tests.support.mocks import is_secret, run_program, unwrap

COMPUTE = Compute(
    cpu_request="100m", memory_request="128Mi", cpu_limit="500m", memory_limit="256Mi"
)
IMAGES = ImageSettings()
"""The stacks' default images."""
REDIS_IMAGES = {"image": IMAGES.redis, "exporter_image": IMAGES.redis_exporter}
POSTGRES_IMAGES = {"image": IMAGES.postgres, "exporter_image": IMAGES.postgres_exporter}
AGE_KEY = "age1hv83qjevgmne4350jqn2w8ls0g7rf0tgyufmpj70crmv829gcpxqqhvevv"
"""A real age public key (the stack files' example)."""


def _platform() -> KubernetesPlatform:
    return KubernetesPlatform(namespace="unit", instance="unit")


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (
            lambda p: RedisArgs(
                platform=p,
                compute=COMPUTE,
                storage_size="1Gi",
                **{**REDIS_IMAGES, "image": "redis"},
            ),
            "pinned",
        ),
        (
            lambda p: RedisArgs(
                platform=p,
                compute=COMPUTE,
                storage_size=None,
                **{**REDIS_IMAGES, "exporter_image": "x:latest"},
            ),
            "pinned",
        ),
        (
            lambda p: PostgresArgs(
                platform=p,
                compute=COMPUTE,
                storage_size="1Gi",
                backup=BackupPolicy(
                    schedule="0 3 * * *",
                    retention_days=0,
                    storage_size="1Gi",
                    image=IMAGES.backup,
                ),
                **POSTGRES_IMAGES,
            ),
            "retention_days",
        ),
        (
            lambda p: PostgresArgs(
                platform=p,
                compute=COMPUTE,
                storage_size="1Gi",
                backup=BackupPolicy(
                    schedule="0 3 * * 7",
                    retention_days=1,
                    storage_size="1Gi",
                    image=IMAGES.backup,
                ),
                **POSTGRES_IMAGES,
            ),
            "BackupPolicy: schedule '0 3 \\* \\* 7' is not a cron schedule",
        ),
        (
            lambda p: PostgresArgs(
                platform=p,
                compute=COMPUTE,
                storage_size="1Gi",
                database="app; drop",
                **POSTGRES_IMAGES,
            ),
            "identifiers",
        ),
    ],
)
def test_invalid_args_fail_before_any_resource(build, problem: str) -> None:
    def program() -> None:
        Redis("redis", build(_platform()))

    with pytest.raises(ValueError, match=problem) as raised:
        run_program(program, stack="unit", config={})
    assert raised.value.recorded == []  # type: ignore[attr-defined]


def _offsite(**changes: object) -> OffsiteCopy:
    fields: dict = {
        "endpoint": "https://s3.eu-central-1.amazonaws.com",
        "bucket": "safeguard-backups",
        "region": "eu-central-1",
        "prefix": "safeguard/production/",
        "retention_days": 30,
        "recipients": (AGE_KEY,),
        "access_key_id": None,
        "secret_access_key": None,
    }
    return OffsiteCopy(**(fields | changes))


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: _offsite(endpoint="s3.example.com"), "endpoint 's3.example.com'"),
        (lambda: _offsite(endpoint="https://s3.example.com/bucket"), "endpoint"),
        (lambda: _offsite(bucket="Backups"), "bucket 'Backups'"),
        (lambda: _offsite(bucket="a..b"), "bucket"),
        (lambda: _offsite(region=" "), "region is empty"),
        (lambda: _offsite(endpoint="https://key:secret@s3.example.com"), "endpoint"),
        (lambda: _offsite(prefix="/safeguard/"), "prefix '/safeguard/'"),
        (lambda: _offsite(prefix="safeguard"), "end in '/'"),
        (lambda: _offsite(retention_days=0), "retention_days"),
        (lambda: _offsite(recipients=()), "at least one age public key"),
        (lambda: _offsite(recipients=("ssh-ed25519 AAAA",)), "not an age public key"),
        # One character off: the bech32 checksum catches the typo before any dump is encrypted.
        (lambda: _offsite(recipients=(AGE_KEY[:-1] + "w",)), "not an age public key"),
        (lambda: _offsite(recipients=(AGE_KEY.upper(),)), "not an age public key"),
        (lambda: RestoreCheck(schedule="61 * * * *"), "RestoreCheck: schedule .61 .* is not"),
        (lambda: RestoreCheck(expected_tables={"items": 1}), "schema.table"),
        (lambda: RestoreCheck(expected_tables={"public.items": -1}), "at least 0"),
        (
            lambda: BackupPolicy(
                schedule="0 3 * * *",
                retention_days=1,
                storage_size="1Gi",
                image="ghcr.io/example/safeguard-backup:latest",
            ),
            "pinned",
        ),
        (
            lambda: BackupPolicy(
                schedule="@every 1x", retention_days=1, storage_size="1Gi", image=IMAGES.backup
            ),
            "BackupPolicy: schedule '@every 1x' is not a cron schedule: unknown descriptor",
        ),
        (
            lambda: PushgatewayArgs(platform=_platform(), pushers=(), image=IMAGES.pushgateway),
            "pushers is empty",
        ),
        (
            lambda: PushgatewayArgs(
                platform=_platform(), pushers=("job",), image="prom/pushgateway"
            ),
            "pinned",
        ),
    ],
)
def test_invalid_backup_settings_name_the_field(build, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build()


@pytest.mark.parametrize(
    ("schedule", "gap"), [("15 2 * * *", timedelta(days=1)), ("0 0 1 * *", timedelta(days=31))]
)
def test_a_job_counts_as_missing_after_its_longest_wait_its_deadline_and_a_grace(
    schedule: str, gap: timedelta
) -> None:
    # The run's deadline (an hour) and a grace of 15 minutes come on top.
    assert max_age_seconds(schedule) == gap.total_seconds() + 3600 + 900


def test_a_lone_redis_keeps_its_password_secret_and_persists_to_a_volume() -> None:
    def program() -> None:
        cache = Redis(
            "cache",
            RedisArgs(platform=_platform(), compute=COMPUTE, storage_size="2Gi", **REDIS_IMAGES),
        )
        pulumi.export("url", cache.url)
        pulumi.export("password", cache.password)
        pulumi.export("host", cache.host)

    run = run_program(program, stack="unit", config={})

    assert {"url", "password"} <= run.secret_outputs
    assert "host" not in run.secret_outputs
    password = run.outputs["password"]
    assert password and password in run.outputs["url"]
    [component] = [r for r in run.resources if r.type == "safeguard:components:Redis"]
    assert component.custom is False
    [stateful_set] = [r for r in run.resources if r.kind == "StatefulSet"]
    spec = unwrap(stateful_set.inputs)["spec"]
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    redis_container = next(
        c for c in spec["template"]["spec"]["containers"] if c["name"] == "redis"
    )
    assert "--appendonly yes" in " ".join(
        redis_container.get("command", []) + redis_container.get("args", [])
    )
    for resource in run.resources:
        if resource.kind in {"ConfigMap", "StatefulSet", "Service"}:
            assert password not in repr(unwrap(resource.inputs)), resource.name
    assert any(
        r.kind == "Secret" and is_secret(r.inputs.get("stringData")) for r in run.resources
    ), "the password must reach Kubernetes only through a secret Secret"


def test_the_edge_and_prometheus_reach_the_app_at_the_address_it_exposes() -> None:
    def program() -> None:
        platform = _platform()
        api = AppService(
            "api",
            AppServiceArgs(
                platform=platform,
                image="ghcr.io/example/api:1.0.0",
                environment="staging",
                database_url="postgresql://api:secret@db:5432/api",
                redis_url="redis://:secret@cache:6379/0",
                compute=COMPUTE,
            ),
        )
        Nginx(
            "edge",
            NginxArgs(
                platform=platform,
                upstream=api.address,
                server_name="api.example.com",
                image=IMAGES.nginx,
                exporter_image=IMAGES.nginx_exporter,
            ),
        )
        Monitoring(
            "monitoring",
            MonitoringArgs(
                platform=platform,
                environment="staging",
                targets=(ScrapeTarget(job="api", address=api.metrics_target),),
                prometheus_image=IMAGES.prometheus,
                alertmanager_image=IMAGES.alertmanager,
                grafana_image=IMAGES.grafana,
            ),
        )

    run = run_program(program, stack="unit", config={})

    config_maps = {r.name: unwrap(r.inputs)["data"] for r in run.of_type("core/v1:ConfigMap")}
    assert "server api:8000" in config_maps["edge-config"]["nginx.conf"]
    scrape = yaml.safe_load(config_maps["monitoring-prometheus-config"]["prometheus.yml"])
    [api_job] = [job for job in scrape["scrape_configs"] if job["job_name"] == "api"]
    assert api_job["static_configs"] == [{"targets": ["api:8000"]}]
