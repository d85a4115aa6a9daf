"""policies/secret_env.py: no secret-looking env with a literal value (advisory by default)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess, Secret
from infra.offline.wire import UNKNOWN
from tests.support.diagnostics import only, violations
from tests.support.policies import container, deployment, docker


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"name": "DB_PASSWORD", "value": "hunter2"}, "DB_PASSWORD looks secret but has a literal"),
        ({"name": "stripeApiKey", "value": "sk_live_1"}, "stripeApiKey looks secret"),
        (
            {"name": "DATABASE_URL", "value": "postgresql://app:hunter2@db:5432/app"},
            "DATABASE_URL embeds a password in a URL",
        ),
        (
            {"name": "JWT_SECRET", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            "JWT_SECRET looks secret but comes from a ConfigMap",
        ),
    ],
)
def test_k8s_literal_secrets(pack: PolicyPackProcess, env: dict[str, Any], expected: str) -> None:
    resource = deployment(container(env=[env]))

    message = only(pack.analyze(resource), "k8s-no-literal-secrets", "advisory")

    assert expected in message and "spec.template.spec.containers[0].env[0]" in message


@pytest.mark.parametrize(
    "env",
    [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
        {"name": "DATABASE_URL", "value": "postgresql://app:$(DB_PASSWORD)@db:5432/app"},
        {"name": "POSTGRES_PASSWORD_FILE", "value": "/run/secrets/db"},
        {"name": "TOKEN_TTL", "value": "300"},
    ],
)
def test_k8s_secret_references_pass(pack: PolicyPackProcess, env: dict[str, Any]) -> None:
    assert pack.analyze(deployment(container(env=[env]))) == []


def test_docker_literal_secret_is_reported(pack: PolicyPackProcess) -> None:
    resource = docker(envs=["LOG_LEVEL=info", "API_TOKEN=abc123"])

    message = only(pack.analyze(resource), "docker-no-literal-secrets", "advisory")

    assert "API_TOKEN looks secret but has a literal value (envs[1])" in message


def test_docker_unknown_value_is_not_literal(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze(docker(envs=["LOG_LEVEL=info", UNKNOWN]))

    assert violations(diagnostics, "docker-no-literal-secrets") == []


def test_docker_env_list_that_is_secret_as_a_whole_passes(pack: PolicyPackProcess) -> None:
    # The shape the engine sends as soon as one entry is a Pulumi secret: the Docker provider
    # takes no secrets, so the engine marks the whole list (provider_plugin.go#annotateSecrets).
    # Which entry was the secret is lost, so a literal beside it cannot be told apart.
    resource = docker(envs=Secret(["DB_PASSWORD=hunter2", "LOG_LEVEL=info"]))

    assert pack.analyze(resource) == []


# Argo CD, Bank of Anthos and friends: names that hold a secret word but not a secret.
@pytest.mark.parametrize(
    "env",
    [
        {
            "name": "ARGOCD_REDIS_KEY_PREFIX",
            "valueFrom": {
                "configMapKeyRef": {"name": "argocd-cmd-params-cm", "key": "redis.key.prefix"}
            },
        },
        {"name": "ARGOCD_REDIS_KEY_PREFIX", "value": "argocd"},
        {
            "name": "ARGOCD_APPLICATIONSET_CONTROLLER_TOKENREF_STRICT_MODE",
            "valueFrom": {
                "configMapKeyRef": {
                    "name": "argocd-cmd-params-cm",
                    "key": "applicationsetcontroller.enable.tokenref.strict.mode",
                }
            },
        },
        {"name": "ARGOCD_APPLICATIONSET_CONTROLLER_TOKENREF_STRICT_MODE", "value": "false"},
        {"name": "TOKEN_EXPIRY_SECONDS", "value": "3600"},
        {"name": "MAX_NEW_TOKENS", "value": "512"},
        {"name": "REFRESH_TOKEN_LIFETIME", "value": "720h"},
        {"name": "SESSION_TOKEN_VALIDITY", "value": "PT8H"},
        {"name": "REQUIRE_API_KEY", "value": "true"},
        {"name": "SECRET_BACKEND", "value": "vault"},
        {"name": "PASSWORD_HASHER", "value": "argon2"},
        {"name": "DB_PASSWORD", "value": "$(POSTGRES_PASSWORD)"},
    ],
    ids=lambda env: f"{env['name']}={env.get('value', 'configMapKeyRef')}",
)
def test_settings_about_secrets_are_not_secrets(
    pack: PolicyPackProcess, env: dict[str, Any]
) -> None:
    assert pack.analyze(deployment(container(env=[env]))) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MYSQL_ROOT_PASSWORD", "password"),
        ("ORDER_QUEUE_PASSWORD", "fake_password"),
        ("MINIO_SECRET_KEY", "minio123"),
        ("ACCESS_KEY", "8312341g-5678-abcd-4a2b2c-33bcsd655"),
        ("SECRET_BACKEND_TOKEN_SEED", "Zq8!rT2#pL9x"),
    ],
)
def test_a_short_word_is_still_a_secret_where_the_name_ends_in_one(
    pack: PolicyPackProcess, name: str, value: str
) -> None:
    resource = deployment(container(env=[{"name": name, "value": value}]))

    message = only(pack.analyze(resource), "k8s-no-literal-secrets", "advisory")

    assert f"{name} looks secret but has a literal value" in message


def test_docker_settings_about_secrets_pass(pack: PolicyPackProcess) -> None:
    resource = docker(envs=["TOKEN_EXPIRY_SECONDS=3600", "REDIS_KEY_PREFIX=app", "API_KEY=k3y"])

    message = only(pack.analyze(resource), "docker-no-literal-secrets", "advisory")

    assert "API_KEY looks secret" in message and "PREFIX" not in message
