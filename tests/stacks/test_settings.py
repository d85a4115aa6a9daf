"""Stack settings: each stack file is valid, and invalid config fails before any resource exists
with one message listing every problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from spec.images import image_digest
from stacks import SettingsError, load_settings
from stacks.settings import Settings
from tests.support.mocks import (
    STACKS,
    build_stack,
    is_secret,
    pod_specs,
    run_program,
    stack_config,
    unwrap,
)
from tests.support.project import copy_checkout
from tests.support.servers import REPO_ROOT

RELEASE = "ghcr.io/example/safeguard-app@sha256:" + "5" * 64
"""An app image as the deploy workflow sets it on staging and production: by digest."""


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_builds_a_whole_system(stack: str) -> None:
    run = build_stack(stack)
    components = {r.type for r in run.resources if not r.custom}
    # Only stacks with scheduled backups get a Pushgateway for their outcome.
    assert components == {
        "safeguard:components:AppService",
        "safeguard:components:Postgres",
        "safeguard:components:Redis",
        "safeguard:components:Nginx",
        "safeguard:components:Monitoring",
    } | ({"safeguard:components:Pushgateway"} if stack != "dev" else set())
    assert run.outputs["public_url"].startswith("http")
    assert run.outputs["environment"] == {"dev": "development"}.get(stack, stack)


def test_production_invalid_config_lists_every_problem_and_registers_nothing() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "production",
            app='{"image": "ghcr.io/example/safeguard-app:latest", "replicas": 1, '
            '"allowedOrigins": ["*"]}',
            edge='{"host": "safeguard.example.com"}',
            persistentStorage="false",
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "app.image",  # latest is not pinned
        "app.replicas: production needs at least 2",
        "app.allowedOrigins: '*' is not allowed",
        "edge.tls: production needs TLS",
        "persistentStorage: production needs persistent storage",
    ):
        assert expected in problems
    assert len(caught.value.problems) >= 5
    assert str(len(caught.value.problems)) in str(caught.value)
    assert caught.value.recorded == []  # type: ignore[attr-defined]


def test_production_without_origins_is_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "production",
            app=json.dumps({"image": RELEASE, "replicas": 3}),
        )
    assert caught.value.problems == [
        "safeguard:app.allowedOrigins: production needs explicit origins"
    ]


def test_type_errors_and_unknown_keys_are_reported_together() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "staging",
            app=json.dumps({"image": RELEASE, "replicas": "two", "replica": 3}),
            platform="nomad",
            namespace="default",
            postgres="[1, 2]",
        )
    problems = caught.value.problems
    assert "safeguard:app.replicas: must be an integer, got 'two'" in problems
    assert (
        "safeguard:app.replica: unknown setting; did you mean safeguard:app.replicas?" in problems
    )
    assert any(p.startswith("safeguard:platform: must be one of") for p in problems)
    assert any(p.startswith("safeguard:namespace: 'default' is reserved") for p in problems)
    assert "safeguard:postgres: must be an object, got list" in problems


def test_docker_refuses_what_it_cannot_run() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "dev",
            app='{"build": true, "replicas": 2}',
            postgres='{"backupEnabled": true}',
        )
    text = str(caught.value)
    assert "Docker runs one container per service" in text
    assert "scheduled backups need the kubernetes platform" in text


def test_production_settings_meet_the_production_rules() -> None:
    run = build_stack("production")
    deployments = {r.name: r.inputs for r in run.of_type("apps/v1:Deployment")}
    assert deployments["app-deployment"]["spec"]["replicas"] >= 2
    assert run.outputs["public_url"].startswith("https://")
    claims = [
        t
        for r in run.of_type("apps/v1:StatefulSet")
        for t in r.inputs["spec"].get("volumeClaimTemplates", [])
    ]
    # Postgres, Redis, Prometheus, Alertmanager, Grafana and the Pushgateway keep their data on
    # claims.
    assert len(claims) == 6


def test_edge_settings_name_what_is_wrong() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "staging",
            edge='{"host": "_", "tls": {"secret": "t"}, "trustedProxies": ["10.0.0.1/8"], '
            '"internalNetwork": [], "connectionsPerClient": 0}',
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "safeguard:edge.host: '_' is not a host name",
        "safeguard:edge.trustedProxies[0]: '10.0.0.1/8' is not an IP network",
        "safeguard:edge.internalNetwork: must name where nginx reaches the app from",
        "safeguard:edge.connectionsPerClient: must be at least 1, got 0",
    ):
        assert expected in problems
    with pytest.raises(SettingsError) as caught:
        build_stack("dev", edge='{"internalNetwork": ["10.1.0.0/24", "10.2.0.0/24"]}')
    assert caught.value.problems == [
        "safeguard:edge.internalNetwork: on docker, one IPv4 subnet for the backend network, "
        "got ['10.1.0.0/24', '10.2.0.0/24']"
    ]


# --- every key known, every value checked where it is read -----------------------------------


def _problems(stack: str, **overrides: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        build_stack(stack, **overrides)
    assert caught.value.recorded == []  # type: ignore[attr-defined]
    return caught.value.problems


def test_misspelled_top_level_keys_are_refused_with_the_key_meant() -> None:
    problems = _problems(
        "production",
        namspace="safeguard-production",
        persistantStorage="true",
        egde='{"host": "safeguard.example.com"}',
    )
    assert problems == [
        "safeguard:egde: unknown setting; did you mean safeguard:edge?",
        "safeguard:namspace: unknown setting; did you mean safeguard:namespace?",
        "safeguard:persistantStorage: unknown setting; did you mean safeguard:persistentStorage?",
    ]


def test_misspelled_keys_are_refused_at_every_level() -> None:
    problems = _problems(
        "production",
        app=json.dumps(
            {
                "image": RELEASE,
                "replicas": 3,
                "allowedOrigins": ["https://safeguard.example.com"],
                "resources": {"cpuLimmit": "1"},
            }
        ),
        monitoring='{"prometheusRetension": "30d"}',
    )
    assert problems == [
        "safeguard:app.resources.cpuLimmit: unknown setting; did you mean "
        "safeguard:app.resources.cpuLimit?",
        "safeguard:monitoring.prometheusRetension: unknown setting; did you mean "
        "safeguard:monitoring.prometheusRetention?",
    ]


def test_an_unknown_key_with_nothing_close_lists_the_known_ones() -> None:
    (problem,) = _problems("staging", edge='{"host": "staging.safeguard.example.com", "x": 1}')
    assert problem.startswith("safeguard:edge.x: unknown setting (known: burst, clientMaxBodySize")


def test_a_misspelled_namespace_of_keys_is_refused() -> None:
    config, secret_keys = stack_config("staging")
    config["safegaurd:replicas"] = "3"
    with pytest.raises(SettingsError) as caught:
        run_program(load_settings, stack="staging", config=config, secret_keys=secret_keys)
    assert caught.value.problems == [
        "safegaurd:replicas: unknown config namespace 'safegaurd'; did you mean safeguard:replicas?"
    ]


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        (
            "postgres",
            {"storageSize": "50GB"},
            "safeguard:postgres.storageSize: '50GB' is not a Kubernetes quantity",
        ),
        (
            "postgres",
            {"backupSchedule": "every night"},
            "safeguard:postgres.backupSchedule: 'every night' is not a cron schedule",
        ),
        (
            "postgres",
            {"backupSchedule": "0 3 * * 7"},
            "safeguard:postgres.backupSchedule: '0 3 * * 7' is not a cron schedule: day of week "
            "'7': end of range (7) above maximum (6)",
        ),
        (
            "postgres",
            {"restoreCheckSchedule": "0 4 30 2 *"},
            "safeguard:postgres.restoreCheckSchedule: '0 4 30 2 *' runs less than twice in 8 years",
        ),
        (
            "redis",
            {"resources": {"memoryLimit": "1 Gi"}},
            "safeguard:redis.resources.memoryLimit: '1 Gi' is not a Kubernetes quantity",
        ),
        (
            "redis",
            {"resources": {"memoryRequest": "1Gi"}},
            "safeguard:redis.resources.memoryRequest: 1Gi is more than the memory limit 256Mi",
        ),
        (
            "monitoring",
            {"prometheusRetention": "a month"},
            "safeguard:monitoring.prometheusRetention: 'a month' is not a Prometheus duration",
        ),
        (
            "edge",
            {"host": "staging.safeguard.example.com", "tls": {"secret": "Staging_TLS"}},
            "safeguard:edge.tls.secret: 'Staging_TLS' is not a Kubernetes object name",
        ),
        (
            "edge",
            {"host": "staging.safeguard.example.com", "clientMaxBodySize": "1 MB"},
            "safeguard:edge.clientMaxBodySize: '1 MB' is not an nginx size",
        ),
        (
            "app",
            {"image": "ghcr.io/Example/app:1.0"},
            "safeguard:app.image: 'ghcr.io/Example/app:1.0' is not an image reference",
        ),
        (
            "app",
            {
                "image": RELEASE,
                "allowedOrigins": ["https://staging.safeguard.example.com/"],
            },
            "safeguard:app.allowedOrigins[0]: 'https://staging.safeguard.example.com/' is not an "
            "origin",
        ),
        (
            "app",
            {"image": RELEASE, "circuitBreaker": {"failures": 0}},
            "safeguard:app.circuitBreaker.failures: must be at least 1, got 0",
        ),
        (
            "app",
            {"image": RELEASE, "circuitBreaker": {"cooldownSeconds": 0}},
            "safeguard:app.circuitBreaker.cooldownSeconds: must be more than 0",
        ),
        (
            "app",
            {"image": RELEASE, "httpCacheMaxAgeSeconds": -1},
            "safeguard:app.httpCacheMaxAgeSeconds: must be at least 0, got -1",
        ),
        (
            "app",
            {"image": RELEASE, "tracing": {"otlpEndpoint": "collector:4318"}},
            "safeguard:app.tracing.otlpEndpoint: must be an http(s) URL",
        ),
        (
            "app",
            {"image": RELEASE, "tracing": {"sampleRatio": 2}},
            "safeguard:app.tracing.sampleRatio: must be at most 1.0, got 2",
        ),
    ],
)
def test_values_kubernetes_or_the_servers_would_refuse_are_refused_by_key(
    section: str, value: dict[str, Any], expected: str
) -> None:
    problems = _problems("staging", **{section: json.dumps(value)})
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_a_webhook_that_is_no_url_is_refused_without_showing_it() -> None:
    (problem,) = _problems("staging", alertWebhookCritical="hooks.example.com/T0KEN")
    assert problem.startswith("safeguard:alertWebhookCritical: must be an http(s) URL")
    assert "T0KEN" not in problem


def test_a_wrong_type_brings_no_second_bogus_problem() -> None:
    problems = _problems(
        "production",
        app=json.dumps(
            {
                "image": RELEASE,
                "replicas": "three",
                "allowedOrigins": ["https://safeguard.example.com"],
            }
        ),
    )
    assert problems == ["safeguard:app.replicas: must be an integer, got 'three'"]


def test_rules_on_valid_keys_still_run_next_to_invalid_ones() -> None:
    problems = _problems(
        "production",
        app=json.dumps({"image": RELEASE, "replicas": 1, "logLevel": "LOUD"}),
        edge="[1]",
    )
    assert problems == [
        "safeguard:app.logLevel: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'",
        "safeguard:edge: must be an object, got list",
        "safeguard:app.replicas: production needs at least 2, got 1",
        "safeguard:app.allowedOrigins: production needs explicit origins",
    ]


def test_docker_compute_must_be_what_the_docker_back_end_can_give() -> None:
    (problem,) = _problems("dev", app='{"build": true, "resources": {"memoryLimit": "500M"}}')
    assert problem == (
        "safeguard:app.resources.memoryLimit: on docker, memory quantity '500M' must be a whole "
        "number of Mi or Gi"
    )


# --- adding a stack ----------------------------------------------------------------------------


def test_a_new_stack_needs_its_environment_and_its_pack_config() -> None:
    config, secret_keys = stack_config("staging")
    del config["safeguard:environment"]
    with pytest.raises(SettingsError) as caught:
        run_program(load_settings, stack="qa", config=config, secret_keys=secret_keys)
    assert caught.value.problems == [
        "safeguard:environment: required for a stack not named dev, staging or production: "
        "development, staging or production (stack 'qa')",
        "policies/config/qa.json is missing: every stack needs the policy pack's config (start "
        "from a copy of staging.json or production.json; see docs/stacks.md, Adding a stack)",
    ]


def test_two_stacks_in_one_namespace_are_warned_about() -> None:
    run = build_stack("production", namespace="safeguard-staging")
    assert (
        "safeguard:namespace: stack 'staging' (Pulumi.staging.yaml) deploys into "
        "'safeguard-staging' too; on one cluster the two stacks would replace each other's "
        "resources: give this stack a namespace of its own"
    ) in run.warnings
    assert not [w for w in build_stack("production").warnings if "namespace" in w]


# --- what production lacks without refusing it ------------------------------------------------


def test_production_without_webhooks_or_api_keys_is_warned_about() -> None:
    warnings = build_stack("production").warnings
    assert [w.split(" ", 1)[0] for w in warnings] == [
        "safeguard:alertWebhookCritical",
        "safeguard:alertWebhookWarning",
        "safeguard:apiKeys",
        "safeguard:backupAccessKeyId",
        "safeguard:backupSecretAccessKey",
    ]
    assert "POST and DELETE" in warnings[2]
    assert "every backup fails after its local dump" in warnings[3]
    configured = build_stack(
        "production",
        alertWebhookCritical="https://hooks.example.com/critical",
        alertWebhookWarning="https://hooks.example.com/warning",
        apiKeys="key-one,key-two",
        backupAccessKeyId="AKIAEXAMPLE",
        backupSecretAccessKey="example-secret",
    )
    assert configured.warnings == ()
    assert build_stack("dev").warnings == ()


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_staging_and_production_refuse_an_app_image_without_a_digest(stack: str) -> None:
    config, _ = stack_config(stack)
    app = json.loads(config["safeguard:app"])

    for tagged in ("ghcr.io/example/safeguard-app:0.1.0", "safeguard-app:1.2"):
        problems = _problems(stack, app=json.dumps({**app, "image": tagged}))
        assert problems == [
            f"safeguard:app.image: {stack} runs the app by digest (<repository>@sha256:<digest>), "
            f"not the tag {tagged!r}, which may point to other bytes tomorrow; the deploy "
            "workflow sets the release's digest (RELEASING.md)"
        ]
    released = build_stack(stack, app=json.dumps({**app, "image": RELEASE}))
    (pod,) = [p for w, p in pod_specs(released) if w.inputs["metadata"]["name"] == "app"]
    assert {c["image"] for c in pod["containers"] + pod["initContainers"]} == {RELEASE}
    # The committed stack file passes with its placeholder digest.
    assert image_digest(app["image"]) is not None and build_stack(stack).resources


def test_development_takes_a_tag_for_the_image_it_builds_or_pulls() -> None:
    assert build_stack("dev", app=json.dumps({"image": "safeguard-app:0.3"})).resources


def test_the_check_of_staging_fails_on_a_tag_only_app_image(tmp_path: Path) -> None:
    project = copy_checkout(tmp_path)
    stack_file = project / "Pulumi.staging.yaml"
    text = stack_file.read_text()
    digest = yaml.safe_load(text)["config"]["safeguard:app"]["image"]
    stack_file.write_text(text.replace(digest, "ghcr.io/example/safeguard-app:0.1.0"))

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "infra", "check", "--stack", "staging"],
            cwd=project, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    refused = check()
    stack_file.write_text(text)
    passed = check()

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "safeguard:app.image: staging runs the app by digest" in refused.stderr
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_image_settings_name_what_is_wrong() -> None:
    problems = _problems(
        "staging",
        images=json.dumps(
            {
                "registryMirrors": {"dockerhub": "harbor.example.com/x", "quay.io": "proxy/quay"},
                "pullSecrets": ["Registry_Creds"],
                "postgress": "postgres:16.6-alpine",
                "redis": "redis:latest",
            }
        ),
    )

    assert len(problems) == 5, problems
    expected = (
        "safeguard:images.registryMirrors.dockerhub: 'dockerhub' is not a registry host",
        "safeguard:images.registryMirrors.quay.io: 'proxy/quay' must start with the mirror's "
        "registry host",
        "safeguard:images.pullSecrets[0]: 'Registry_Creds'",
        "safeguard:images.postgress: unknown setting; did you mean safeguard:images.postgres?",
        "safeguard:images.redis: 'redis:latest' is not pinned",
    )
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_pull_secrets_are_refused_on_docker() -> None:
    (problem,) = _problems("dev", images=json.dumps({"pullSecrets": ["registry-creds"]}))
    assert problem.startswith("safeguard:images.pullSecrets: exist only on the kubernetes")


# --- the edge's certificate --------------------------------------------------------------------

_HOST = "staging.safeguard.example.com"


def _tls_problems(stack: str, tls: object, **edge: object) -> list[str]:
    return _problems(stack, edge=json.dumps({"host": _HOST, "tls": tls, **edge}))


@pytest.mark.parametrize(
    "tls",
    [{}, {"secret": "staging-tls", "certManager": {"issuer": "letsencrypt"}}],
    ids=["neither", "both"],
)
def test_tls_takes_exactly_one_source(tls: dict[str, object]) -> None:
    assert _tls_problems("staging", tls) == [
        "safeguard:edge.tls: set exactly one of secret (an existing kubernetes.io/tls Secret) "
        "and certManager (an issuer that signs one)"
    ]


def test_cert_manager_settings_name_what_is_wrong() -> None:
    assert _tls_problems("staging", {"certManager": {"isuer": "letsencrypt"}}) == [
        "safeguard:edge.tls.certManager.issuer: required",
        "safeguard:edge.tls.certManager.isuer: unknown setting; did you mean "
        "safeguard:edge.tls.certManager.issuer?",
    ]
    assert _tls_problems(
        "staging", {"certManager": {"issuer": "Lets_Encrypt", "kind": "ClusterIsuer"}}
    ) == [
        "safeguard:edge.tls.certManager.issuer: 'Lets_Encrypt' is not a Kubernetes object name "
        "(lower-case DNS labels joined by '.')",
        "safeguard:edge.tls.certManager.kind: must be one of ClusterIssuer, Issuer, got "
        "'ClusterIsuer'",
    ]


def test_the_replaced_tls_secret_key_names_its_successor() -> None:
    assert _problems("staging", edge=json.dumps({"host": _HOST, "tlsSecret": "staging-tls"})) == [
        "safeguard:edge.tlsSecret: replaced by safeguard:edge.tls.secret (or "
        "edge.tls.certManager for cert-manager)"
    ]


def test_tls_needs_kubernetes() -> None:
    assert _problems("dev", edge=json.dumps({"tls": {"secret": "dev-tls"}})) == [
        "safeguard:edge: tls and ingressClass exist only on the kubernetes platform"
    ]


def load_settings_of(stack: str, **overrides: str) -> Settings:
    """The stack's settings as the program reads them, `overrides` on its stack file."""
    config, secret_keys = stack_config(stack)
    config.update({f"safeguard:{k}": v for k, v in overrides.items()})
    loaded: list[Settings] = []
    run_program(
        lambda: loaded.append(load_settings()),
        stack=stack,
        config=config,
        secret_keys=secret_keys,
    )
    return loaded[0]


def test_production_takes_either_source_and_names_the_secret_it_mounts() -> None:
    issued = load_settings_of("production")
    assert issued.edge.tls is not None and issued.edge.tls.cert_manager is not None
    assert issued.edge.tls.cert_manager.kind == "ClusterIssuer"
    assert issued.tls_secret == "safeguard-production-tls"

    named = load_settings_of(
        "production",
        edge=json.dumps({"host": "safeguard.example.com", "tls": {"secret": "edge-cert"}}),
    )
    assert named.tls_secret == "edge-cert"


def _postgres_with_offsite(**offsite: Any) -> str:
    config, _ = stack_config("production")
    postgres = json.loads(config["safeguard:postgres"])
    return json.dumps({**postgres, "offsite": {**postgres["offsite"], **offsite}})


def test_the_off_site_settings_name_what_is_wrong() -> None:
    key = yaml.safe_load((REPO_ROOT / "Pulumi.production.yaml").read_text())["config"][
        "safeguard:postgres"
    ]["offsite"]["recipients"][0]
    problems = _problems(
        "production",
        postgres=_postgres_with_offsite(
            endpoint="s3.example.com",
            bucket="Safeguard_Backups",
            prefix="/safeguard",
            retentionDays=0,
            region=" ",
            # A typo in the last character: the checksum refuses it.
            recipients=[key, key[:-1] + ("q" if key[-1] != "q" else "p")],
            recipeints=[],
        ),
    )
    where = "safeguard:postgres.offsite"
    assert problems == [
        f"{where}.endpoint: 's3.example.com' is not an S3 endpoint such as "
        "https://s3.eu-central-1.amazonaws.com",
        f"{where}.bucket: 'Safeguard_Backups' is not an S3 bucket name (3 to 63 lower-case "
        "letters, digits, '.' and '-', starting and ending with a letter or digit)",
        f"{where}.region: must not be empty",
        f"{where}.prefix: '/safeguard' must be empty or end in '/', with no leading '/' (such as "
        "safeguard/)",
        f"{where}.retentionDays: must be at least 1, got 0",
        f"{where}.recipients[1]: {key[:-1] + ('q' if key[-1] != 'q' else 'p')!r} is not an age "
        "public key (age1 and 58 more characters, checksum included, as age-keygen -y prints it)",
        f"{where}.recipeints: unknown setting; did you mean {where}.recipients?",
    ]
    (empty,) = _problems("production", postgres=_postgres_with_offsite(recipients=[]))
    assert empty == f"{where}.recipients: needs at least one age public key"


def test_backup_settings_that_nothing_would_use_are_refused() -> None:
    config, _ = stack_config("production")
    postgres = json.loads(config["safeguard:postgres"])
    offsite = postgres.pop("offsite")
    assert _problems("production", postgres=json.dumps(postgres)) == [
        "safeguard:postgres.offsite: production needs off-site copies of its dumps: name the "
        "bucket and the age public key (docs/backup-restore.md)"
    ]
    assert _problems("dev", postgres=json.dumps({"backupEnabled": False, "offsite": offsite})) == [
        "safeguard:postgres.offsite: is set but postgres.backupEnabled is false: there are no "
        "dumps to copy"
    ]
    # The credentials are secrets: their values never show.
    assert _problems("dev", backupSecretAccessKey="wJalrXUtnFEMI") == [
        "safeguard:backupSecretAccessKey: is set but postgres.offsite is not: no backup uses it"
    ]
    (schedule,) = _problems(
        "staging", postgres=json.dumps({"restoreCheckSchedule": "after the backup"})
    )
    assert schedule.startswith(
        "safeguard:postgres.restoreCheckSchedule: 'after the backup' is not a cron schedule"
    )


def test_the_backup_settings_reach_the_jobs() -> None:
    key = "age1tprhpjtynkqu4j3lm7amncrqyj6u7wvvmh7zhc882j6cw4kzkgaqjvgxcj"
    run = build_stack(
        "production",
        postgres=_postgres_with_offsite(recipients=[key], prefix="prod/", retentionDays=45),
        backupAccessKeyId="AKIAEXAMPLE",
        backupSecretAccessKey="example-secret",
    )
    env = {
        r.inputs["metadata"]["name"]: unwrap(r.inputs)["data"]
        for r in run.of_type("core/v1:ConfigMap")
    }
    backup = env["postgres-backup-backup-env"]
    assert (backup["S3_ENDPOINT"], backup["S3_BUCKET"], backup["S3_PREFIX"]) == (
        "https://s3.eu-central-1.amazonaws.com",
        "safeguard-backups-example",
        "prod/",
    )
    assert (backup["S3_RETENTION_DAYS"], backup["AGE_RECIPIENTS"]) == ("45", key)
    (secret,) = [
        r
        for r in run.of_type("core/v1:Secret")
        if r.inputs["metadata"]["name"] == "postgres-backup"
    ]
    assert is_secret(secret.inputs["stringData"])
    stored = unwrap(secret.inputs)["stringData"]
    assert (stored["AWS_ACCESS_KEY_ID"], stored["AWS_SECRET_ACCESS_KEY"]) == (
        "AKIAEXAMPLE",
        "example-secret",
    )
    crons = {
        r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.of_type("batch/v1:CronJob")
    }
    assert crons["postgres-restore-check"]["schedule"] == "30 4 * * *"
    assert "AWS_ACCESS_KEY_ID" not in json.dumps(
        [cm for name, cm in env.items() if name != "postgres-backup-backup-env"]
    ), "a credential in a ConfigMap"
