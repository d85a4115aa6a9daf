"""policies/cors.py: no wildcard CORS, whether in env, Ingress annotations, nginx config in a
ConfigMap or files uploaded into a Docker container."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra.offline.analyzer import PolicyPackProcess
from infra.offline.wire import UNKNOWN
from tests.support.diagnostics import of, only, violations
from tests.support.policies import (
    CONFIG_MAP,
    EXEMPT,
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


# django-cors-headers and its kin switch origin checks off with a boolean.
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORS_ALLOW_ALL_ORIGINS", "true"),
        ("CORS_ORIGIN_ALLOW_ALL", "True"),
        ("DJANGO_CORS_ALLOW_ALL_ORIGINS", "1"),
        ("CORS_ALLOW_ANY_ORIGIN", "yes"),
        ("corsAllowAllOrigins", "on"),
        ("CORS_ALLOW_ALL", "true"),
    ],
)
def test_allow_all_origins_flags_are_refused(
    pack: PolicyPackProcess, name: str, value: str
) -> None:
    resource = deployment(container(env=[{"name": name, "value": value}]))

    message = only(pack.analyze(resource), "no-wildcard-cors")

    assert f"{name} is {value!r}, which allows every origin" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORS_ALLOW_ALL_ORIGINS", "false"),
        ("CORS_ORIGIN_ALLOW_ALL", "False"),
        ("CORS_ALLOW_ALL_HEADERS", "true"),
        ("CORS_ALLOW_CREDENTIALS", "true"),
    ],
)
def test_allow_all_flags_off_and_other_cors_switches_pass(
    pack: PolicyPackProcess, name: str, value: str
) -> None:
    resource = deployment(container(env=[{"name": name, "value": value}]))

    assert pack.analyze(resource) == []


def test_allow_all_flag_in_docker_env_and_config_map(pack: PolicyPackProcess) -> None:
    container_message = only(
        pack.analyze(docker(envs=["CORS_ORIGIN_ALLOW_ALL=true"])), "no-wildcard-cors"
    )
    config_map = k8s(CONFIG_MAP, "web-env", data={"CORS_ALLOW_ALL_ORIGINS": "true"})
    config_message = only(pack.analyze(config_map), "no-wildcard-cors")

    assert "CORS_ORIGIN_ALLOW_ALL is 'true'" in container_message
    assert "data.CORS_ALLOW_ALL_ORIGINS (used as env via envFrom)" in config_message


# --- env taken from ConfigMaps, over the stack (no-wildcard-cors-from-configmaps) -------------


def _django(env: list[dict[str, Any]] | None = None, **changes: Any) -> Any:
    return deployment(container(name="web", env=env or [], **changes), name="web")


def _settings(data: dict[str, str], name: str = "web-settings", namespace: str = "safeguard"):
    return k8s(CONFIG_MAP, name, namespace, data=data)


def _from_config(diagnostics: list[Any]) -> list[Any]:
    return violations(diagnostics, "no-wildcard-cors-from-configmaps")


def test_allow_all_flag_through_config_map_key_ref_is_refused(pack: PolicyPackProcess) -> None:
    web = _django(
        [
            {
                "name": "CORS_ALLOW_ALL_ORIGINS",
                "valueFrom": {"configMapKeyRef": {"name": "web-settings", "key": "cors.all"}},
            }
        ]
    )

    found = _from_config(pack.analyze_stack([web, _settings({"cors.all": "true"})]))

    assert [(d.urn, d.enforcement_level) for d in found] == [
        ("urn:pulumi:dev::safeguard::kubernetes:apps/v1:Deployment::web", "mandatory")
    ]
    assert (
        "container 'web': env CORS_ALLOW_ALL_ORIGINS (spec.template.spec.containers[0].env[0]"
        ".valueFrom.configMapKeyRef: ConfigMap 'web-settings' key 'cors.all'): "
        "CORS_ALLOW_ALL_ORIGINS is 'true', which allows every origin" in found[0].message
    )


def test_wildcard_origins_through_config_map_key_ref_are_refused(pack: PolicyPackProcess) -> None:
    web = _django(
        [
            {
                "name": "CORS_ALLOWED_ORIGINS",
                "valueFrom": {"configMapKeyRef": {"name": "web-settings", "key": "origins"}},
            }
        ]
    )

    found = _from_config(pack.analyze_stack([web, _settings({"origins": "https://a.example,*"})]))

    assert len(found) == 1 and "holds the wildcard '*'" in found[0].message


def test_allow_all_flag_through_prefixed_env_from_is_refused(pack: PolicyPackProcess) -> None:
    web = _django(envFrom=[{"prefix": "CORS_", "configMapRef": {"name": "web-settings"}}])

    settings = _settings({"ALLOW_ALL": "true", "ALLOW_CREDENTIALS": "true"})

    found = _from_config(pack.analyze_stack([web, settings]))

    assert pack.analyze(settings) == []  # no key of its own looks like a CORS setting
    assert len(found) == 1
    assert (
        "env CORS_ALLOW_ALL (spec.template.spec.containers[0].envFrom[0]: prefix "
        "'CORS_' on ConfigMap 'web-settings' key 'ALLOW_ALL'): CORS_ALLOW_ALL is 'true'"
        in found[0].message
    )


def test_allow_all_flag_through_plain_env_from_is_reported_on_the_config_map_once(
    pack: PolicyPackProcess,
) -> None:
    web = _django(envFrom=[{"configMapRef": {"name": "web-settings"}}])
    settings = _settings({"CORS_ALLOW_ALL_ORIGINS": "true"})

    on_config_map = only(pack.analyze(settings), "no-wildcard-cors")
    stack = _from_config(pack.analyze_stack([web, settings]))

    assert "data.CORS_ALLOW_ALL_ORIGINS" in on_config_map and stack == []


@pytest.mark.parametrize(
    ("data", "namespace", "ref_name"),
    [
        ({"cors.all": "false"}, "safeguard", "web-settings"),
        ({"cors.all": "true"}, "other", "web-settings"),
        ({"cors.all": "true"}, "safeguard", "elsewhere"),
        ({"other": "true"}, "safeguard", "web-settings"),
    ],
    ids=["off", "other-namespace", "config-map-not-in-stack", "key-missing"],
)
def test_config_map_refs_that_do_not_allow_all_pass(
    pack: PolicyPackProcess, data: dict[str, str], namespace: str, ref_name: str
) -> None:
    web = _django(
        [
            {
                "name": "CORS_ALLOW_ALL_ORIGINS",
                "valueFrom": {"configMapKeyRef": {"name": ref_name, "key": "cors.all"}},
            }
        ]
    )

    diagnostics = pack.analyze_stack([web, _settings(data, namespace=namespace)])

    assert _from_config(diagnostics) == []


def test_unknown_config_map_value_is_a_preview_note(pack: PolicyPackProcess) -> None:
    web = _django(
        [
            {
                "name": "CORS_ALLOW_ALL_ORIGINS",
                "valueFrom": {"configMapKeyRef": {"name": "web-settings", "key": "cors.all"}},
            }
        ]
    )

    diagnostics = of(
        pack.analyze_stack([web, _settings({"cors.all": UNKNOWN})]),
        "no-wildcard-cors-from-configmaps",
    )

    assert [d.enforcement_level for d in diagnostics] == ["advisory"]
    assert "can't be known during preview" in diagnostics[0].message


def test_exempted_workload_is_listed_not_refused(pack: PolicyPackProcess) -> None:
    web = deployment(
        container(
            name="web",
            env=[
                {
                    "name": "CORS_ALLOW_ALL_ORIGINS",
                    "valueFrom": {"configMapKeyRef": {"name": "web-settings", "key": "all"}},
                }
            ],
        ),
        name="web",
        annotations={f"{EXEMPT}no-wildcard-cors-from-configmaps": "SEC-7: public read-only API"},
    )

    diagnostics = of(
        pack.analyze_stack([web, _settings({"all": "true"})]), "no-wildcard-cors-from-configmaps"
    )

    assert [(d.enforcement_level, d.message.split(":")[0]) for d in diagnostics] == [
        ("advisory", "exempted")
    ]
