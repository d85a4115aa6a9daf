"""Stack settings: each stack file is valid, and invalid config fails before any resource exists
with one message listing every problem."""

from __future__ import annotations

import pytest

from stacks import SettingsError
from tests.support.mocks import STACKS, build_stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_builds_a_whole_system(stack: str) -> None:
    run = build_stack(stack)
    components = {r.type for r in run.resources if not r.custom}
    assert components == {
        "safeguard:components:AppService",
        "safeguard:components:Postgres",
        "safeguard:components:Redis",
        "safeguard:components:Nginx",
        "safeguard:components:Monitoring",
    }
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
        "edge.tlsSecret: production needs TLS",
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
            app='{"image": "ghcr.io/example/safeguard-app:0.1.0", "replicas": 3}',
        )
    assert caught.value.problems == [
        "safeguard:app.allowedOrigins: production needs explicit origins"
    ]


def test_type_errors_and_unknown_keys_are_reported_together() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "staging",
            app='{"image": "ghcr.io/example/safeguard-app:0.1.0", "replicas": "two", "replica": 3}',
            platform="nomad",
            namespace="default",
            postgres="[1, 2]",
        )
    problems = caught.value.problems
    assert "safeguard:app.replicas: must be int, got 'two'" in problems
    assert "safeguard:app.replica: unknown setting" in problems
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
    # Postgres, Redis, Prometheus, Alertmanager and Grafana keep their data on claims.
    assert len(claims) == 5


def test_edge_settings_name_what_is_wrong() -> None:
    with pytest.raises(SettingsError) as caught:
        build_stack(
            "staging",
            edge='{"host": "_", "tlsSecret": "t", "trustedProxies": ["10.0.0.1/8"], '
            '"internalNetwork": [], "connectionsPerClient": 0}',
        )
    problems = "\n".join(caught.value.problems)
    for expected in (
        "safeguard:edge.host: '_' is not a host name",
        "safeguard:edge.trustedProxies: '10.0.0.1/8' is not an IP network",
        "safeguard:edge.internalNetwork: must name where nginx reaches the app from",
        "safeguard:edge.connectionsPerClient: must be 1 to 65535",
    ):
        assert expected in problems
    with pytest.raises(SettingsError) as caught:
        build_stack("dev", edge='{"internalNetwork": ["10.1.0.0/24", "10.2.0.0/24"]}')
    assert caught.value.problems == [
        "safeguard:edge.internalNetwork: on docker, one IPv4 subnet for the backend network, "
        "got ['10.1.0.0/24', '10.2.0.0/24']"
    ]
