"""The safeguard policy pack, run as its own process and driven over the Analyzer gRPC protocol
exactly as the Pulumi engine drives it (see infra/analyzer.py).

Every builder below produces a compliant resource; each test breaks one thing and checks which
policy fires, at which level, and that the message names the container and the field path.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.offline.analyzer import (
    AnalyzerInfo,
    Diagnostic,
    PolicyPackError,
    PolicyPackProcess,
    Resource,
    Secret,
    load_pack_config,
    reconcile_config,
)
from infra.offline.wire import UNKNOWN

PACK_DIR = Path(__file__).resolve().parents[2] / "policies"
CONFIG_DIR = PACK_DIR / "config"

MANDATORY = {
    "k8s-no-root",
    "docker-no-root",
    "k8s-probes",
    "docker-healthcheck",
    "no-wildcard-cors",
}
EXEMPT = "policy.safeguard.dev/exempt-"

TYPES = {
    "Pod": "kubernetes:core/v1:Pod",
    "Deployment": "kubernetes:apps/v1:Deployment",
    "StatefulSet": "kubernetes:apps/v1:StatefulSet",
    "DaemonSet": "kubernetes:apps/v1:DaemonSet",
    "ReplicaSet": "kubernetes:apps/v1:ReplicaSet",
    "Job": "kubernetes:batch/v1:Job",
    "CronJob": "kubernetes:batch/v1:CronJob",
}
POD_PATH = {
    "Pod": "spec",
    "CronJob": "spec.jobTemplate.spec.template.spec",
}
DOCKER = "docker:index/container:Container"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
LABELS = {"app.kubernetes.io/name": "api", "app.kubernetes.io/component": "api"}


# --- the pack process ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pack_process() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR) as process:
        yield process


@pytest.fixture
def pack(pack_process: PolicyPackProcess) -> PolicyPackProcess:
    """The pack with its default configuration (what `pulumi preview` uses without a file)."""
    pack_process.configure(None)
    return pack_process


@pytest.fixture
def production(pack_process: PolicyPackProcess) -> PolicyPackProcess:
    pack_process.configure(CONFIG_DIR / "production.json")
    return pack_process


# --- builders --------------------------------------------------------------------------------


def security_context(**changes: Any) -> dict[str, Any]:
    """A hardened container securityContext; a change to None removes the field."""
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    context.update(changes)
    return {k: v for k, v in context.items() if v is not None}


def container(name: str = "api", **changes: Any) -> dict[str, Any]:
    """A compliant container; a change to None removes the field."""
    spec: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/safeguard/api:1.4.2",
        "securityContext": security_context(),
        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8000}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "env": [
            {"name": "CORS_ALLOW_ORIGINS", "value": "https://app.example.com"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
        ],
    }
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def init_container(name: str = "migrate", **changes: Any) -> dict[str, Any]:
    return container(name, livenessProbe=None, readinessProbe=None, **changes)


def workload(
    kind: str,
    *containers: dict[str, Any],
    name: str = "api",
    namespace: str | None = "safeguard",
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    replicas: int | None = None,
    **pod: Any,
) -> Resource:
    """A Kubernetes workload of `kind` whose pod runs `containers` (default: one compliant)."""
    pod_spec = {"containers": list(containers) or [container()], **pod}
    pod_metadata: dict[str, Any] = {"labels": labels or LABELS}
    if template_annotations:
        pod_metadata["annotations"] = template_annotations
    metadata: dict[str, Any] = {"name": name, "labels": labels or LABELS}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    template = {"metadata": pod_metadata, "spec": pod_spec}
    if kind == "Pod":
        metadata["labels"] = labels or LABELS
        spec: dict[str, Any] = pod_spec
    elif kind == "CronJob":
        spec = {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}}
    else:
        spec = {"template": template}
        if kind != "Job":
            spec["selector"] = {"matchLabels": labels or LABELS}
        if replicas is not None:
            spec["replicas"] = replicas
    return Resource(type=TYPES[kind], name=name, properties={"metadata": metadata, "spec": spec})


def deployment(*containers: dict[str, Any], **kwargs: Any) -> Resource:
    return workload("Deployment", *containers, **kwargs)


def docker(name: str = "api", **changes: Any) -> Resource:
    """A compliant Docker container; a change to None removes the field."""
    props: dict[str, Any] = {
        "name": name,
        "image": "ghcr.io/safeguard/api:1.4.2",
        "user": "10001:10001",
        "healthcheck": {"tests": ["CMD", "/app/healthcheck"], "interval": "10s"},
        "envs": ["CORS_ALLOW_ORIGINS=https://app.example.com", "LOG_LEVEL=info"],
        "memory": 256,
        "cpus": "0.5",
        "readOnly": True,
        "capabilities": {"drops": ["ALL"]},
        "networkMode": "bridge",
        "labels": [{"label": "app.kubernetes.io/name", "value": "api"}],
    }
    props.update(changes)
    return Resource(
        type=DOCKER, name=name, properties={k: v for k, v in props.items() if v is not None}
    )


def k8s(kind_type: str, name: str, namespace: str = "safeguard", **fields: Any) -> Resource:
    metadata = {"name": name, "namespace": namespace, **fields.pop("metadata", {})}
    return Resource(type=kind_type, name=name, properties={"metadata": metadata, **fields})


def network_policy(match_labels: dict[str, str] | None, namespace: str = "safeguard") -> Resource:
    selector = {} if match_labels is None else {"matchLabels": match_labels}
    return k8s(NETWORK_POLICY, "np", namespace, spec={"podSelector": selector})


# --- reading results -------------------------------------------------------------------------


def of(diagnostics: list[Diagnostic], policy: str) -> list[Diagnostic]:
    return [d for d in diagnostics if d.policy_name == policy]


def violations(diagnostics: list[Diagnostic], policy: str) -> list[Diagnostic]:
    """Diagnostics of `policy` that are findings, not exemption or preview notes."""
    return [
        d
        for d in of(diagnostics, policy)
        if not d.message.startswith("exempted:") and "during preview" not in d.message
    ]


def fired(diagnostics: list[Diagnostic]) -> set[str]:
    return {d.policy_name for d in diagnostics}


def only(diagnostics: list[Diagnostic], policy: str, level: str = "mandatory") -> str:
    """The single finding of `policy` (asserting nothing else fired); returns its message."""
    assert fired(diagnostics) == {policy}, [d.message for d in diagnostics]
    found = violations(diagnostics, policy)
    assert len(found) == 1, [d.message for d in found]
    assert found[0].enforcement_level == level
    return found[0].message


# --- the pack and its configuration ----------------------------------------------------------


def test_pack_lists_its_policies_with_default_levels(pack: PolicyPackProcess) -> None:
    info = pack.info()

    assert info.name == "safeguard" and info.supports_config
    levels = {p.name: p.enforcement_level for p in info.policies}
    assert {n for n, level in levels.items() if level == "mandatory"} == MANDATORY
    assert {n for n, level in levels.items() if level != "mandatory"} == {
        n for n in levels if n not in MANDATORY
    }
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", name) for name in levels)
    assert {p.name for p in info.policies if p.kind == "stack"} == {
        "k8s-network-policy-coverage",
        "k8s-pdb-coverage",
    }
    assert info.policy("k8s-loadbalancer-edge-only").config_schema["edgeComponents"]["default"] == [
        "edge"
    ]


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_stack_config_files_name_only_existing_policies(
    pack: PolicyPackProcess, stack: str
) -> None:
    raw = load_pack_config(CONFIG_DIR / f"{stack}.json")
    known = {p.name for p in pack.info().policies}

    assert set(raw) - {"all"} <= known
    reconcile_config(pack.info(), raw)  # raises on a config the engine would refuse


def test_production_makes_every_policy_mandatory_and_dev_keeps_defaults(
    pack: PolicyPackProcess,
) -> None:
    info = pack.info()
    production = reconcile_config(info, load_pack_config(CONFIG_DIR / "production.json"))
    dev = reconcile_config(info, load_pack_config(CONFIG_DIR / "dev.json"))

    assert {name for name, c in production.items() if c.enforcement_level != "mandatory"} == set()
    assert {p.name: dev[p.name].enforcement_level for p in info.policies} == {
        p.name: p.enforcement_level for p in info.policies
    }


def test_all_sets_every_level_and_named_entries_override_it(pack: PolicyPackProcess) -> None:
    config = reconcile_config(pack.info(), {"all": "mandatory", "k8s-probes": "advisory"})

    assert {n for n, c in config.items() if c.enforcement_level != "mandatory"} == {"k8s-probes"}


def test_advisory_policy_becomes_mandatory_under_production_config(
    pack_process: PolicyPackProcess,
) -> None:
    unpinned = deployment(container(image="ghcr.io/safeguard/api:latest"))

    pack_process.configure(CONFIG_DIR / "dev.json")
    dev = pack_process.analyze(unpinned)
    pack_process.configure(CONFIG_DIR / "production.json")
    production = pack_process.analyze(unpinned)

    assert only(dev, "image-tag-pinned", "advisory")
    assert only(production, "image-tag-pinned", "mandatory")


def test_config_that_breaks_the_schema_is_refused(pack: PolicyPackProcess) -> None:
    with pytest.raises(ValueError, match="edgeComponents"):
        pack.configure({"k8s-loadbalancer-edge-only": {"edgeComponents": "edge"}})


def test_policy_can_be_disabled_by_config(pack: PolicyPackProcess) -> None:
    unpinned = deployment(container(image="nginx"))
    pack.configure({"image-tag-pinned": "disabled"})

    assert pack.analyze(unpinned) == []


# --- compliant resources pass everything ------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TYPES))
def test_compliant_workload_passes_every_policy(production: PolicyPackProcess, kind: str) -> None:
    resource = workload(kind, container(), initContainers=[init_container()])

    assert production.analyze(resource) == []


def test_compliant_docker_container_passes_every_policy(production: PolicyPackProcess) -> None:
    assert production.analyze(docker()) == []


# --- k8s-no-root -----------------------------------------------------------------------------


def test_container_run_as_user_zero_overrides_pod_non_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsNonRoot=None, runAsUser=0)),
        securityContext={"runAsNonRoot": True, "runAsUser": 10001},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "container 'api'" in message
    assert "spec.template.spec.containers[0].securityContext.runAsUser is 0" in message


def test_container_non_root_overrides_pod_run_as_user_zero(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=True)),
        securityContext={"runAsUser": 0},
    )

    assert pack.analyze(resource) == []


def test_pod_run_as_user_zero_is_inherited(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None)),
        securityContext={"runAsUser": 0, "runAsNonRoot": True},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "spec.template.spec.securityContext.runAsUser is 0" in message


def test_container_run_as_non_root_false_overrides_pod_non_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=False)),
        securityContext={"runAsNonRoot": True},
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "containers[0].securityContext.runAsNonRoot is false" in message


def test_pod_level_non_root_alone_is_enough(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None)),
        securityContext={"runAsNonRoot": True},
    )

    assert pack.analyze(resource) == []


def test_nothing_set_means_the_image_user_which_may_be_root(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(securityContext=security_context(runAsUser=None, runAsNonRoot=None))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "runAsNonRoot: true" in message and "container 'api'" in message


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("initContainers", "init container 'debug' may run as root"),
        ("ephemeralContainers", "ephemeral container 'debug' may run as root"),
    ],
)
def test_init_and_ephemeral_containers_count(
    pack: PolicyPackProcess, field: str, expected: str
) -> None:
    root = init_container("debug", securityContext=security_context(runAsUser=0))
    resource = deployment(container(), **{field: [root]})

    message = only(pack.analyze(resource), "k8s-no-root")

    assert expected in message
    assert f"spec.template.spec.{field}[0].securityContext.runAsUser" in message


def test_privileged_container_is_refused(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container("api"), container("sidecar", securityContext=security_context(privileged=True))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "container 'sidecar' is privileged" in message
    assert "spec.template.spec.containers[1].securityContext.privileged" in message


@pytest.mark.parametrize(("value", "state"), [(None, "is not set"), (True, "is true")])
def test_privilege_escalation_must_be_disabled(
    pack: PolicyPackProcess, value: bool | None, state: str
) -> None:
    resource = deployment(
        container(securityContext=security_context(allowPrivilegeEscalation=value))
    )

    message = only(pack.analyze(resource), "k8s-no-root")

    assert f"containers[0].securityContext.allowPrivilegeEscalation {state}" in message


@pytest.mark.parametrize("kind", ["Pod", "CronJob"])
def test_root_is_found_at_each_kinds_pod_spec(pack: PolicyPackProcess, kind: str) -> None:
    resource = workload(kind, container(securityContext=security_context(runAsUser=0)))

    message = only(pack.analyze(resource), "k8s-no-root")

    assert f"{POD_PATH[kind]}.containers[0].securityContext.runAsUser is 0" in message
    assert f"{kind} 'api'" in message


# --- docker-no-root --------------------------------------------------------------------------


@pytest.mark.parametrize("user", [None, "", "root", "0", "0:0", "root:app", " 0 "])
def test_docker_container_must_not_run_as_root(pack: PolicyPackProcess, user: str | None) -> None:
    resource = docker(user=user)

    message = only(pack.analyze(resource), "docker-no-root")

    assert "Container 'api'" in message and "user" in message


@pytest.mark.parametrize("user", ["10001", "10001:0", "app", "app:app"])
def test_docker_non_root_users_pass(pack: PolicyPackProcess, user: str) -> None:
    assert pack.analyze(docker(user=user)) == []


def test_privileged_docker_container_is_refused(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze(docker(privileged=True))

    assert fired(diagnostics) == {"docker-no-root", "docker-host-isolation"}
    assert violations(diagnostics, "docker-no-root")[0].enforcement_level == "mandatory"


# --- probes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_long_running_container_needs_both_probes(pack: PolicyPackProcess, probe: str) -> None:
    resource = workload("StatefulSet", container("db", **{probe: None}))

    message = only(pack.analyze(resource), "k8s-probes")

    assert f"container 'db' has no {probe} (spec.template.spec.containers[0].{probe})" in message


def test_probe_without_handler_is_refused(pack: PolicyPackProcess) -> None:
    resource = deployment(container(readinessProbe={"periodSeconds": 5}))

    message = only(pack.analyze(resource), "k8s-probes")

    assert "containers[0].readinessProbe has no handler" in message


@pytest.mark.parametrize(
    ("kind", "needs_probes"),
    [("Job", False), ("CronJob", False), ("DaemonSet", True), ("Pod", True)],
)
def test_only_long_running_pods_need_probes(
    pack: PolicyPackProcess, kind: str, needs_probes: bool
) -> None:
    resource = workload(kind, container(livenessProbe=None, readinessProbe=None))

    assert ("k8s-probes" in fired(pack.analyze(resource))) is needs_probes


def test_pod_that_never_restarts_needs_no_probes(pack: PolicyPackProcess) -> None:
    resource = workload(
        "Pod", container(livenessProbe=None, readinessProbe=None), restartPolicy="Never"
    )

    assert pack.analyze(resource) == []


def test_init_containers_need_no_probes(pack: PolicyPackProcess) -> None:
    resource = deployment(container(), initContainers=[init_container()])

    assert pack.analyze(resource) == []


def test_one_shot_docker_container_needs_no_healthcheck(pack: PolicyPackProcess) -> None:
    one_shot = docker("migrate", healthcheck=None, mustRun=False, restart="no")
    restarted = docker("worker", healthcheck=None, mustRun=False, restart="unless-stopped")

    assert pack.analyze(one_shot) == []
    assert "healthcheck is not set" in only(pack.analyze(restarted), "docker-healthcheck")


@pytest.mark.parametrize(
    ("healthcheck", "expected"),
    [
        (None, "healthcheck is not set"),
        ({"tests": ["NONE"]}, 'healthcheck.tests is ["NONE"]'),
        ({"tests": [], "interval": "5s"}, "healthcheck.tests is empty"),
    ],
)
def test_docker_healthcheck_must_be_enabled(
    pack: PolicyPackProcess, healthcheck: dict[str, Any] | None, expected: str
) -> None:
    message = only(pack.analyze(docker(healthcheck=healthcheck)), "docker-healthcheck")

    assert expected in message


# --- no-wildcard-cors ------------------------------------------------------------------------


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


def ingress(annotations: dict[str, str]) -> Resource:
    return k8s(INGRESS, "edge", metadata={"annotations": annotations}, spec={"rules": []})


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


# --- advisory policies -----------------------------------------------------------------------


def test_missing_requests_and_limits(pack: PolicyPackProcess) -> None:
    resources = {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}
    resource = deployment(container(), initContainers=[init_container(resources=resources)])

    message = only(pack.analyze(resource), "k8s-resource-limits", "advisory")

    assert "init container 'migrate' has no requests.memory, limits.cpu" in message
    assert "spec.template.spec.initContainers[0].resources" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({"memory": None}, "memory is not set"), ({"cpus": None}, "neither cpus nor cpuQuota")],
)
def test_docker_limits(pack: PolicyPackProcess, changes: dict[str, Any], expected: str) -> None:
    message = only(pack.analyze(docker(**changes)), "docker-resource-limits", "advisory")

    assert expected in message


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/safeguard/api:latest", "uses the moving tag latest"),
        ("ghcr.io/safeguard/api", "has no tag"),
        ("localhost:5000/api", "has no tag"),
    ],
)
def test_image_must_be_pinned(pack: PolicyPackProcess, image: str, expected: str) -> None:
    k8s_message = only(
        pack.analyze(deployment(container(image=image))), "image-tag-pinned", "advisory"
    )
    docker_message = only(pack.analyze(docker(image=image)), "image-tag-pinned", "advisory")

    assert expected in k8s_message and "spec.template.spec.containers[0].image" in k8s_message
    assert expected in docker_message


@pytest.mark.parametrize(
    "image",
    ["nginx:1.27.3", "localhost:5000/api:2.0", "nginx@sha256:" + "a" * 64, "sha256:" + "b" * 64],
)
def test_pinned_images_pass(pack: PolicyPackProcess, image: str) -> None:
    assert pack.analyze(docker(image=image)) == []


def test_writable_root_filesystem(pack: PolicyPackProcess) -> None:
    resource = deployment(container(securityContext=security_context(readOnlyRootFilesystem=False)))

    message = only(pack.analyze(resource), "k8s-read-only-root-filesystem", "advisory")

    assert "containers[0].securityContext.readOnlyRootFilesystem is false" in message
    assert "docker-read-only-root-filesystem" in fired(pack.analyze(docker(readOnly=None)))


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({}, "capabilities.drop does not include ALL"),
        ({"drop": ["NET_RAW"]}, "capabilities.drop does not include ALL"),
        (
            {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"]},
            "capabilities.add adds SYS_ADMIN",
        ),
    ],
)
def test_capabilities(pack: PolicyPackProcess, capabilities: dict[str, Any], expected: str) -> None:
    resource = deployment(container(securityContext=security_context(capabilities=capabilities)))

    message = only(pack.analyze(resource), "k8s-drop-capabilities", "advisory")

    assert f"spec.template.spec.containers[0].securityContext.{expected}" in message


def test_harmless_added_capability_passes(pack: PolicyPackProcess) -> None:
    caps = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    resource = deployment(container(securityContext=security_context(capabilities=caps)))

    assert pack.analyze(resource) == []


def test_forbidden_capabilities_are_configurable(pack: PolicyPackProcess) -> None:
    caps = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    resource = deployment(container(securityContext=security_context(capabilities=caps)))
    pack.configure({"k8s-drop-capabilities": {"forbiddenCapabilities": ["NET_BIND_SERVICE"]}})

    assert only(pack.analyze(resource), "k8s-drop-capabilities", "advisory")


def test_docker_capabilities(pack: PolicyPackProcess) -> None:
    message = only(
        pack.analyze(docker(capabilities={"drops": ["ALL"], "adds": ["NET_ADMIN"]})),
        "docker-drop-capabilities",
        "advisory",
    )

    assert "capabilities.adds adds NET_ADMIN" in message


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"hostNetwork": True}, "spec.template.spec.hostNetwork is true"),
        ({"hostPID": True}, "spec.template.spec.hostPID is true"),
        ({"hostIPC": True}, "spec.template.spec.hostIPC is true"),
        (
            {"volumes": [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]},
            "volume 'docker' (spec.template.spec.volumes[0].hostPath)",
        ),
    ],
)
def test_k8s_host_isolation(pack: PolicyPackProcess, pod: dict[str, Any], expected: str) -> None:
    message = only(pack.analyze(deployment(**pod)), "k8s-host-isolation", "advisory")

    assert expected in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"networkMode": "host"}, 'networkMode is "host"'),
        ({"pidMode": "host"}, 'pidMode is "host"'),
        (
            {"mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]},
            "mounts[0] bind-mounts the host path '/var/run/docker.sock'",
        ),
        ({"volumes": [{"hostPath": "/etc", "containerPath": "/h"}]}, "volumes[0].hostPath"),
    ],
)
def test_docker_host_isolation(
    pack: PolicyPackProcess, changes: dict[str, Any], expected: str
) -> None:
    message = only(pack.analyze(docker(**changes)), "docker-host-isolation", "advisory")

    assert expected in message


def test_named_volume_mount_passes(pack: PolicyPackProcess) -> None:
    mounts = [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}]

    assert pack.analyze(docker(mounts=mounts)) == []


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


@pytest.mark.parametrize("value", [Secret("API_TOKEN=abc123"), UNKNOWN])
def test_docker_secret_output_or_unknown_value_is_not_literal(
    pack: PolicyPackProcess, value: Any
) -> None:
    diagnostics = pack.analyze(docker(envs=["LOG_LEVEL=info", value]))

    assert violations(diagnostics, "docker-no-literal-secrets") == []


def test_docker_env_list_that_is_secret_as_a_whole_passes(pack: PolicyPackProcess) -> None:
    resource = docker(envs=Secret(["DB_PASSWORD=hunter2", "LOG_LEVEL=info"]))

    assert pack.analyze(resource) == []


def service(service_type: str, component: str) -> Resource:
    labels = {"app.kubernetes.io/component": component}
    return k8s(
        SERVICE,
        component,
        metadata={"labels": labels},
        spec={"type": service_type, "selector": labels, "ports": [{"port": 443}]},
    )


def test_load_balancer_only_for_the_edge(pack: PolicyPackProcess) -> None:
    message = only(
        pack.analyze(service("LoadBalancer", "api")), "k8s-loadbalancer-edge-only", "advisory"
    )

    assert "app.kubernetes.io/component: api" in message
    assert pack.analyze(service("LoadBalancer", "edge")) == []
    assert pack.analyze(service("ClusterIP", "api")) == []


def test_edge_components_are_configurable(pack: PolicyPackProcess) -> None:
    pack.configure({"k8s-loadbalancer-edge-only": {"edgeComponents": ["nginx"]}})

    assert pack.analyze(service("LoadBalancer", "nginx")) == []
    assert "k8s-loadbalancer-edge-only" in fired(pack.analyze(service("LoadBalancer", "edge")))


@pytest.mark.parametrize(
    ("namespace", "state"), [(None, "is not set"), ("default", 'is "default"')]
)
def test_no_default_namespace(pack: PolicyPackProcess, namespace: str | None, state: str) -> None:
    message = only(
        pack.analyze(deployment(namespace=namespace)), "k8s-no-default-namespace", "advisory"
    )
    service_in_default = k8s(SERVICE, "api", namespace="default", spec={"type": "ClusterIP"})

    assert f"metadata.namespace {state}" in message
    assert "k8s-no-default-namespace" in fired(pack.analyze(service_in_default))


# --- exemptions ------------------------------------------------------------------------------


ROOT = container(securityContext=security_context(runAsUser=0))


def test_exemption_with_reason_skips_the_check_and_is_listed(
    production: PolicyPackProcess,
) -> None:
    reason = "SEC-42: vendor image needs uid 0 until 2.0"
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": reason})

    diagnostics = production.analyze(resource)

    assert [(d.policy_name, d.enforcement_level) for d in diagnostics] == [
        ("k8s-no-root", "advisory")
    ]
    assert diagnostics[0].message.startswith(f"exempted: {reason}")


def test_exemption_on_the_pod_template_counts(pack: PolicyPackProcess) -> None:
    resource = deployment(ROOT, template_annotations={f"{EXEMPT}k8s-no-root": "SEC-42"})

    diagnostics = pack.analyze(resource)

    assert violations(diagnostics, "k8s-no-root") == []
    assert "spec.template.metadata.annotations" in of(diagnostics, "k8s-no-root")[0].message


@pytest.mark.parametrize("reason", ["", "   "])
def test_exemption_without_reason_is_a_violation(pack: PolicyPackProcess, reason: str) -> None:
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": reason})

    found = violations(pack.analyze(resource), "k8s-no-root")

    assert sorted("gives no reason" in d.message for d in found) == [False, True]
    assert all(d.enforcement_level == "mandatory" for d in found)


def test_exemption_whose_reason_is_unknown_does_not_exempt(pack: PolicyPackProcess) -> None:
    resource = deployment(ROOT, annotations={f"{EXEMPT}k8s-no-root": UNKNOWN})

    diagnostics = of(pack.analyze(resource), "k8s-no-root")

    assert [d.enforcement_level for d in violations(diagnostics, "k8s-no-root")] == ["mandatory"]
    assert [d.enforcement_level for d in diagnostics if "during preview" in d.message] == [
        "advisory"
    ]


def test_exemption_covers_only_the_named_policy(pack: PolicyPackProcess) -> None:
    resource = deployment(
        container(image="nginx", securityContext=security_context(runAsUser=0)),
        annotations={f"{EXEMPT}image-tag-pinned": "upstream only publishes latest"},
    )

    diagnostics = pack.analyze(resource)

    assert violations(diagnostics, "k8s-no-root")
    assert violations(diagnostics, "image-tag-pinned") == []
    assert of(diagnostics, "image-tag-pinned")[0].message.startswith("exempted: upstream")


def test_docker_label_exemption(pack: PolicyPackProcess) -> None:
    labels = [{"label": f"{EXEMPT}docker-healthcheck", "value": "one-shot migration container"}]

    diagnostics = pack.analyze(docker(healthcheck=None, labels=labels))

    assert [(d.policy_name, d.enforcement_level) for d in diagnostics] == [
        ("docker-healthcheck", "advisory")
    ]
    assert "labels[0]" in diagnostics[0].message


# --- unknown values and malformed input ------------------------------------------------------


def test_unknown_security_context_gives_a_preview_note(production: PolicyPackProcess) -> None:
    resource = deployment(
        container("api", securityContext=UNKNOWN),
        container("sidecar", securityContext=security_context(runAsUser=0)),
    )

    diagnostics = of(production.analyze(resource), "k8s-no-root")

    notes = [d for d in diagnostics if "during preview" in d.message]
    assert [d.enforcement_level for d in notes] == ["advisory"]
    assert ".spec.template.spec.containers[0].securityContext" in notes[0].message
    found = violations(diagnostics, "k8s-no-root")
    assert [("container 'sidecar'" in d.message, d.enforcement_level) for d in found] == [
        (True, "mandatory")
    ]


@pytest.mark.parametrize(
    "resource",
    [
        Resource(type=TYPES["Deployment"], name="api", properties={"spec": UNKNOWN}),
        deployment(container(env=UNKNOWN, image=UNKNOWN)),
        docker(user=UNKNOWN, healthcheck={"tests": UNKNOWN}, envs=UNKNOWN),
        ingress({"nginx.ingress.kubernetes.io/enable-cors": UNKNOWN}),
        k8s(CONFIG_MAP, "nginx", data={"nginx.conf": UNKNOWN}),
    ],
    ids=["spec", "env-and-image", "docker", "ingress", "configmap"],
)
def test_unknown_values_never_fail_a_check(pack: PolicyPackProcess, resource: Resource) -> None:
    diagnostics = pack.analyze(resource)

    assert diagnostics, "an unknown field must leave a note"
    assert {d.enforcement_level for d in diagnostics if "during preview" in d.message} == {
        "advisory"
    }
    assert all(
        "during preview" in d.message or d.enforcement_level == "advisory" for d in diagnostics
    ), [d.message for d in diagnostics]


MALFORMED: list[Resource] = [
    Resource(type=TYPES["Deployment"], name="a", properties={"spec": "replicas: 3"}),
    Resource(type=TYPES["CronJob"], name="b", properties={"spec": {"jobTemplate": []}}),
    deployment(container(securityContext=["runAsNonRoot"])),
    deployment(container(securityContext=security_context(runAsUser="0", runAsNonRoot="yes"))),
    deployment(container(env={"CORS_ORIGINS": "*"}, resources="big", image=7)),
    deployment(container(name=None, env=[None, 3, {"name": 5}, {"name": "X", "value": 1}])),
    deployment(containers="api", volumes={"a": 1}, hostNetwork="yes"),
    deployment(container(securityContext=security_context(capabilities={"drop": "ALL"}))),
    docker(
        user=0, envs="A=B", labels={"x": 1}, healthcheck=["CMD"], uploads=[None, {"content": 4}]
    ),
    docker(capabilities={"drops": [None, 1]}, mounts=[{"type": 3}], memory="lots", cpus=2),
    ingress({"nginx.ingress.kubernetes.io/enable-cors": True}),  # type: ignore[dict-item]
    Resource(type=INGRESS, name="i", properties={"metadata": {"annotations": ["x"]}}),
    Resource(type=CONFIG_MAP, name="c", properties={"data": ["x"], "binaryData": {"k": "%%"}}),
    Resource(type=SERVICE, name="s", properties={"spec": {"type": "LoadBalancer", "selector": 1}}),
    Resource(type=TYPES["Pod"], name="p", properties={"metadata": "x", "spec": None}),
]


@pytest.mark.parametrize("resource", MALFORMED, ids=lambda r: f"{r.type.rsplit(':')[-1]}-{r.name}")
def test_malformed_input_is_reported_not_raised(
    pack: PolicyPackProcess, resource: Resource
) -> None:
    diagnostics = pack.analyze(resource) + pack.analyze_stack([resource])

    assert not [d.message for d in diagnostics if "bug in the safeguard policy pack" in d.message]


def test_wrong_type_names_the_field_and_what_it_must_be(pack: PolicyPackProcess) -> None:
    resource = deployment(container(securityContext=security_context(runAsUser="0")))

    message = only(pack.analyze(resource), "k8s-no-root")

    assert "spec.template.spec.containers[0].securityContext.runAsUser is '0' (str)" in message
    assert "must be an integer" in message


# --- stack policies --------------------------------------------------------------------------


def test_workload_selected_by_a_network_policy_passes(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze_stack(
        [deployment(), network_policy({"app.kubernetes.io/name": "api"})]
    )

    assert of(diagnostics, "k8s-network-policy-coverage") == []


@pytest.mark.parametrize(
    "policies",
    [
        [],
        [network_policy({"app.kubernetes.io/name": "web"})],
        [network_policy({**LABELS, "tier": "backend"})],
        [network_policy(None, namespace="other")],
    ],
    ids=["none", "other-labels", "superset", "other-namespace"],
)
def test_workload_without_a_selecting_network_policy(
    pack: PolicyPackProcess, policies: list[Resource]
) -> None:
    api = deployment()

    found = violations(pack.analyze_stack([api, *policies]), "k8s-network-policy-coverage")

    assert [(d.urn, d.enforcement_level) for d in found] == [
        ("urn:pulumi:dev::safeguard::kubernetes:apps/v1:Deployment::api", "advisory")
    ]
    assert "namespace 'safeguard'" in found[0].message
    assert "app.kubernetes.io/name=api" in found[0].message


def test_empty_pod_selector_selects_the_whole_namespace(pack: PolicyPackProcess) -> None:
    diagnostics = pack.analyze_stack([deployment(), network_policy(None)])

    assert of(diagnostics, "k8s-network-policy-coverage") == []


@pytest.mark.parametrize(
    ("operator", "values", "selected"),
    [("In", ["api", "web"], True), ("In", ["web"], False), ("NotIn", ["api"], False)],
)
def test_match_expressions_select(
    pack: PolicyPackProcess, operator: str, values: list[str], selected: bool
) -> None:
    expression = {"key": "app.kubernetes.io/name", "operator": operator, "values": values}
    policy = k8s(NETWORK_POLICY, "np", spec={"podSelector": {"matchExpressions": [expression]}})

    diagnostics = pack.analyze_stack([deployment(), policy])

    assert (violations(diagnostics, "k8s-network-policy-coverage") == []) is selected


def test_selectors_sharing_a_label_each_select_only_their_workload(
    pack: PolicyPackProcess,
) -> None:
    shop = {"app.kubernetes.io/part-of": "shop"}
    # Every selector holds the shared pair; each must still reach (only) its own workload,
    # and all of them a workload whose name is not known yet.
    selectors = [{**shop, "app.kubernetes.io/name": name} for name in ("web", "api", "db")]
    policies = [
        k8s(NETWORK_POLICY, f"np-{i}", spec={"podSelector": {"matchLabels": labels}})
        for i, labels in enumerate(selectors)
    ]
    workloads = [
        deployment(name=name, labels={**shop, "app.kubernetes.io/name": value})
        for name, value in (("api", "api"), ("cache", "cache"), ("worker", UNKNOWN))
    ]

    policy = "k8s-network-policy-coverage"
    found = of(pack.analyze_stack([*workloads, *policies]), policy)

    assert [d.urn.rsplit("::", 1)[-1] for d in violations(found, policy)] == ["cache"]
    notes = [d.message for d in found if "during preview" in d.message]
    assert len(notes) == 1 and "worker: NetworkPolicy selection" in notes[0]
    assert "api:" not in notes[0]


def pdb(match_labels: dict[str, str]) -> Resource:
    return k8s(PDB, "api", spec={"minAvailable": 1, "selector": {"matchLabels": match_labels}})


def test_replicated_workload_needs_a_pdb(pack: PolicyPackProcess) -> None:
    covered = [network_policy(None)]

    missing = violations(pack.analyze_stack([deployment(replicas=3), *covered]), "k8s-pdb-coverage")
    with_pdb = pack.analyze_stack(
        [deployment(replicas=3), pdb({"app.kubernetes.io/name": "api"}), *covered]
    )
    single = pack.analyze_stack([deployment(replicas=1), *covered])

    assert [d.urn.rsplit("::", 1)[-1] for d in missing] == ["api"]
    assert "runs 3 replicas" in missing[0].message
    assert with_pdb == [] and single == []


def test_hpa_min_replicas_counts_as_replicas(pack: PolicyPackProcess) -> None:
    hpa = k8s(
        HPA,
        "api",
        spec={
            "minReplicas": 2,
            "maxReplicas": 5,
            "scaleTargetRef": {"kind": "Deployment", "name": "api"},
        },
    )

    found = violations(
        pack.analyze_stack([deployment(), hpa, network_policy(None)]), "k8s-pdb-coverage"
    )

    assert ["runs 2 replicas" in d.message for d in found] == [True]


def test_stack_policy_exemption_is_listed_per_resource(production: PolicyPackProcess) -> None:
    exempt = deployment(annotations={f"{EXEMPT}k8s-network-policy-coverage": "SEC-7: legacy"})

    diagnostics = production.analyze_stack([exempt])

    assert [
        (d.policy_name, d.enforcement_level, d.urn.rsplit("::", 1)[-1]) for d in diagnostics
    ] == [("k8s-network-policy-coverage", "advisory", "api")]
    assert diagnostics[0].message.startswith("exempted: SEC-7: legacy")


def test_unknown_labels_in_stack_give_a_preview_note(pack: PolicyPackProcess) -> None:
    api = deployment(labels={"app.kubernetes.io/name": UNKNOWN})

    diagnostics = pack.analyze_stack([api, network_policy({"app.kubernetes.io/name": "api"})])

    assert violations(diagnostics, "k8s-network-policy-coverage") == []
    assert [d.enforcement_level for d in of(diagnostics, "k8s-network-policy-coverage")] == [
        "advisory"
    ]


# --- starting the pack -----------------------------------------------------------------------


@pytest.mark.parametrize("cwd", [PACK_DIR.parent, PACK_DIR], ids=["repo-root", "pack-dir"])
def test_pack_also_serves_when_run_as_a_script(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    monkeypatch.chdir(cwd)

    with PolicyPackProcess(PACK_DIR, launcher="script") as pack:
        diagnostics = pack.analyze(docker(user="root"))

    assert fired(diagnostics) == {"docker-no-root"}


def test_startup_failure_shows_the_pack_stderr(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("raise SystemExit('policy pack exploded: bad import')\n")
    process = PolicyPackProcess(tmp_path, startup_timeout=30)

    with pytest.raises(PolicyPackError, match="policy pack exploded: bad import"), process:
        pass


def test_config_file_format_matches_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"all": "mandatory", "image-tag-pinned": {"enforcementLevel": "x"}}))

    with pytest.raises(ValueError, match="not a valid enforcement level"):
        reconcile_config(
            AnalyzerInfo(name="x", version="0", supports_config=True, policies=()),
            load_pack_config(path),
        )
