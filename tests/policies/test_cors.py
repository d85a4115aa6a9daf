"""policies/cors.py: no wildcard CORS, whether in env, Ingress annotations, nginx config in a
ConfigMap or files uploaded into a Docker container."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.diagnostics import only
from tests.support.policies import (
    CONFIG_MAP,
    container,
    deployment,
    docker,
    ingress,
    init_container,
    k8s,
    workload,
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALLOWED_ORIGINS", "*"),
        ("CORS_ORIGINS", "https://app.example.com,*"),
        ("CORS_ALLOW_ORIGINS", '["https://app.example.com", "*"]'),
        ("SAFEGUARD_CORS__ORIGINS", "https://app.example.com *"),
        ("corsAllowedOrigins", " * "),
        ("CORS_ALLOW_ORIGIN_REGEX", ".*"),
    ],
)
def test_wildcard_cors_env_is_refused(pack: PolicyPackProcess, name: str, value: str) -> None:
    resource = deployment(container(env=[{"name": name, "value": value}]))

    message = only(pack.analyze(resource), "no-wildcard-cors")

    assert f"env {name} (spec.template.spec.containers[0].env[0])" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORS_ORIGINS", "https://app.example.com,https://admin.example.com"),
        ("CORS_ALLOW_ORIGIN_REGEX", r"https://[a-z]+\.example\.com"),
        ("GLOB_PATTERN", "*"),
    ],
)
def test_listed_origins_and_unrelated_stars_pass(
    pack: PolicyPackProcess, name: str, value: str
) -> None:
    resource = deployment(container(env=[{"name": name, "value": value}]))

    assert pack.analyze(resource) == []


def test_wildcard_cors_in_init_container_env(pack: PolicyPackProcess) -> None:
    job = workload(
        "CronJob", initContainers=[init_container(env=[{"name": "CORS_ORIGINS", "value": "*"}])]
    )

    message = only(pack.analyze(job), "no-wildcard-cors")

    assert "spec.jobTemplate.spec.template.spec.initContainers[0].env[0]" in message


def test_wildcard_cors_in_docker_env(pack: PolicyPackProcess) -> None:
    resource = docker(envs=["LOG_LEVEL=info", "ALLOWED_ORIGINS=https://a.example.com;*"])

    message = only(pack.analyze(resource), "no-wildcard-cors")

    assert "env ALLOWED_ORIGINS (envs[1])" in message


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        (
            {"nginx.ingress.kubernetes.io/enable-cors": "true"},
            "enable-cors is true without nginx.ingress.kubernetes.io/cors-allow-origin",
        ),
        (
            {
                "nginx.ingress.kubernetes.io/enable-cors": "true",
                "nginx.ingress.kubernetes.io/cors-allow-origin": "https://a.example.com, *",
            },
            "holds the wildcard",
        ),
        (
            {
                "nginx.ingress.kubernetes.io/configuration-snippet": (
                    'add_header "Access-Control-Allow-Origin" "*" always;'
                )
            },
            "annotation nginx.ingress.kubernetes.io/configuration-snippet sets "
            "Access-Control-Allow-Origin to *",
        ),
        (
            {
                "nginx.ingress.kubernetes.io/server-snippet": (
                    'more_set_headers "Access-Control-Allow-Origin: $http_origin";'
                )
            },
            "reflects $http_origin",
        ),
    ],
)
def test_wildcard_cors_in_ingress_annotations(
    pack: PolicyPackProcess, annotations: dict[str, str], expected: str
) -> None:
    message = only(pack.analyze(ingress(annotations)), "no-wildcard-cors")

    assert expected in message and "Ingress 'edge'" in message


@pytest.mark.parametrize(
    "annotations",
    [
        {
            "nginx.ingress.kubernetes.io/enable-cors": "true",
            "nginx.ingress.kubernetes.io/cors-allow-origin": "https://app.example.com",
        },
        {"nginx.ingress.kubernetes.io/enable-cors": "false"},
        {"nginx.ingress.kubernetes.io/configuration-snippet": "add_header X-Frame-Options DENY;"},
    ],
)
def test_ingress_with_listed_origins_passes(
    pack: PolicyPackProcess, annotations: dict[str, str]
) -> None:
    assert pack.analyze(ingress(annotations)) == []


ALLOWLIST_MAP = r"""
map $http_origin $cors_origin {
    default "";
    "~^https://(app|admin)\.example\.com$" $http_origin;
}
server {
    location / { add_header Access-Control-Allow-Origin $cors_origin always; }
}
"""


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("location / {\n  add_header 'Access-Control-Allow-Origin' '*' always;\n}", "to *"),
        ("add_header Access-Control-Allow-Origin *;", "to *"),
        ("add_header Access-Control-Allow-Origin $http_origin always;", "no allowlist"),
        (
            "map $http_origin $cors { default $http_origin; }\n"
            "add_header Access-Control-Allow-Origin $cors;",
            "reflects any origin through map $http_origin $cors",
        ),
        (
            'if ($http_origin ~* ".*") { add_header Access-Control-Allow-Origin $http_origin; }',
            "no allowlist",
        ),
    ],
)
def test_wildcard_cors_in_nginx_config_map(
    pack: PolicyPackProcess, config: str, expected: str
) -> None:
    resource = k8s(CONFIG_MAP, "nginx", data={"nginx.conf": config})

    message = only(pack.analyze(resource), "no-wildcard-cors")

    assert "data.nginx.conf" in message and expected in message


@pytest.mark.parametrize(
    "config",
    [
        ALLOWLIST_MAP,
        (
            'if ($http_origin ~ "^https://app\\.example\\.com$") {\n'
            "  add_header Access-Control-Allow-Origin $http_origin;\n}"
        ),
        "# add_header Access-Control-Allow-Origin *;\nadd_header X-Content-Type-Options nosniff;",
        "add_header Access-Control-Allow-Origin https://app.example.com;",
    ],
)
def test_allowlisted_nginx_cors_passes(pack: PolicyPackProcess, config: str) -> None:
    resource = k8s(CONFIG_MAP, "nginx", data={"nginx.conf": config})

    assert pack.analyze(resource) == []


def test_wildcard_cors_in_config_map_used_as_env(pack: PolicyPackProcess) -> None:
    resource = k8s(CONFIG_MAP, "api-env", data={"CORS_ORIGINS": "*", "LOG_LEVEL": "info"})

    message = only(pack.analyze(resource), "no-wildcard-cors")

    assert "data.CORS_ORIGINS" in message


@pytest.mark.parametrize("encoded", [False, True])
def test_wildcard_cors_in_docker_uploads(pack: PolicyPackProcess, encoded: bool) -> None:
    config = 'server { add_header Access-Control-Allow-Origin "*"; }'
    upload: dict[str, Any] = {"file": "/etc/nginx/conf.d/default.conf"}
    if encoded:
        upload["contentBase64"] = base64.b64encode(config.encode()).decode()
    else:
        upload["content"] = config

    message = only(pack.analyze(docker(uploads=[upload])), "no-wildcard-cors")

    assert "uploads[0] (/etc/nginx/conf.d/default.conf)" in message


def test_allowlisted_nginx_upload_passes(pack: PolicyPackProcess) -> None:
    upload = {"file": "/etc/nginx/nginx.conf", "content": ALLOWLIST_MAP}

    assert pack.analyze(docker(uploads=[upload])) == []
