"""Secret env policies: secret-looking env vars come from Kubernetes Secrets or Pulumi secrets,
never from literals written into the program, and no env value embeds URL credentials."""

from __future__ import annotations

import re
from typing import Final

from _framework import Resource, resource_policy
from _sdk import request_secret_paths
from _values import UNKNOWN, Findings
from _workloads import (
    DOCKER_CONTAINER,
    K8S_WORKLOADS,
    EnvVar,
    containers,
    docker_env,
    k8s_env,
    label,
    pod_spec,
)
from pulumi_policy import EnforcementLevel

_SENSITIVE_WORDS: Final = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "CREDENTIAL")
# A trailing word that makes the variable point at a secret rather than hold one.
_REFERENCE_WORDS: Final = frozenset(
    {"FILE", "PATH", "DIR", "URL", "URI", "ENDPOINT", "HOST", "PORT", "ID", "NAME", "TTL",
     "EXPIRY", "EXPIRES", "LENGTH", "HEADER", "TYPE", "ALGORITHM"}
)  # fmt: skip
_CAMEL: Final = re.compile(r"([a-z0-9])([A-Z])")
_URL_CREDENTIALS: Final = re.compile(r"[a-z][a-z0-9+.-]*://[^/:@\s]+:(?P<password>[^@/\s]+)@", re.I)


def is_secret_name(name: str) -> bool:
    words = [w for w in re.split(r"[^A-Z0-9]+", _CAMEL.sub(r"\1_\2", name).upper()) if w]
    if not words or words[-1] in _REFERENCE_WORDS or words == ["PWD"]:
        return False
    return any(any(s in word for s in _SENSITIVE_WORDS) or word.endswith("KEY") for word in words)


def embeds_credentials(value: str) -> bool:
    """True for URLs like postgres://app:hunter2@db/app (not $(VAR) or ${VAR} references)."""
    for match in _URL_CREDENTIALS.finditer(value):
        if not match.group("password").startswith(("$(", "${")):
            return True
    return False


def _literal_problems(var: EnvVar) -> list[str]:
    if not isinstance(var.value, str) or not var.value or var.secret:
        return []
    problems = []
    if is_secret_name(var.name):
        problems.append(f"{var.name} looks secret but has a literal value ({var.path})")
    if embeds_credentials(var.value):
        problems.append(f"{var.name} embeds a password in a URL ({var.path})")
    return problems


def check_k8s_secret_env(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    where = label(resource.type, resource.name)
    for container in containers(pod, findings):
        for var in k8s_env(container, findings):
            for problem in _literal_problems(var):
                findings.fail(
                    f"{where}: {container.title}: {problem}; put it in a Secret and use "
                    "valueFrom.secretKeyRef (or reference it as $(VAR) in URLs)."
                )
            if var.source and "configMapKeyRef" in var.source and is_secret_name(var.name):
                findings.fail(
                    f"{where}: {container.title}: {var.name} looks secret but comes from a "
                    f"ConfigMap ({var.path}.valueFrom.configMapKeyRef); ConfigMaps are not "
                    "secret, use valueFrom.secretKeyRef."
                )


def check_docker_secret_env(resource: Resource, findings: Findings) -> None:
    secret_paths = request_secret_paths() or set()
    where = label(resource.type, resource.name)
    for var in docker_env(resource.props, findings, secret_paths):
        if var.value is UNKNOWN:
            continue
        for problem in _literal_problems(var):
            findings.fail(
                f"{where}: {problem}; pass a Pulumi secret (config.require_secret or a "
                "RandomPassword result) or mount it as a file and set <NAME>_FILE."
            )


POLICIES: Final = [
    resource_policy(
        name="k8s-no-literal-secrets",
        description="Secret-looking Kubernetes env vars must come from a Secret "
        "(valueFrom.secretKeyRef), not a literal value.",
        resource_types=K8S_WORKLOADS,
        check=check_k8s_secret_env,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    resource_policy(
        name="docker-no-literal-secrets",
        description="Secret-looking Docker env vars must hold a Pulumi secret, not a literal.",
        resource_types={DOCKER_CONTAINER},
        check=check_docker_secret_env,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
