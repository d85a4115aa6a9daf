"""Secret env policies: secret-looking env vars come from Kubernetes Secrets or Pulumi secrets,
never from literals written into the program, and no env value embeds URL credentials.

A variable looks secret by its name (a word such as PASSWORD, TOKEN or ...KEY, unless the last
word says it describes one: `_FILE`, `_PREFIX`, `_SECONDS`, `_MODE`) and by its value: booleans,
numbers, durations and `$(VAR)` references are never secrets, and a short plain word is a
setting unless the name ends with the secret word (`SECRET_BACKEND=vault` passes,
`DB_PASSWORD=mysql` does not)."""

from __future__ import annotations

import functools
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
# A trailing word that makes the variable describe or point at a secret rather than hold one:
# its file, its name, its lifetime, a prefix for keys, a mode of checking tokens.
_REFERENCE_WORDS: Final = frozenset(
    {"FILE", "PATH", "DIR", "URL", "URI", "ENDPOINT", "HOST", "PORT", "ID", "NAME", "TTL",
     "EXPIRY", "EXPIRES", "EXPIRATION", "LENGTH", "HEADER", "TYPE", "ALGORITHM", "PREFIX",
     "SUFFIX", "MODE", "SECONDS", "MINUTES", "HOURS", "DAYS", "MS", "TIMEOUT", "DURATION",
     "LIFETIME", "AGE", "INTERVAL", "SIZE", "COUNT", "LIMIT", "ENABLED", "DISABLED", "REF",
     "KIND", "FORMAT", "VERSION", "ISSUER", "AUDIENCE", "SCOPE", "SCOPES", "NAMESPACE"}
)  # fmt: skip
_CAMEL: Final = re.compile(r"([a-z0-9])([A-Z])")
_URL_CREDENTIALS: Final = re.compile(r"[a-z][a-z0-9+.-]*://[^/:@\s]+:(?P<password>[^@/\s]+)@", re.I)
# Values no secret takes: booleans, numbers, durations (Go's 1h30m, ISO 8601's PT1H), and
# Kubernetes `$(VAR)` references to other variables.
_NOT_SECRET_VALUES: Final = re.compile(
    r"true|false|yes|no|on|off|enabled?|disabled?"
    r"|[+-]?\d+(\.\d+)?"
    r"|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d|w))+"
    r"|P(?=\d|T\d)(\d+[YMWD])*(T(\d+(\.\d+)?[HMS])+)?"
    r"|(\$\([A-Za-z_][A-Za-z0-9_]*\))+",
    re.IGNORECASE,
)
# A short plain word: a setting's value (`vault`, `argon2`, `strict`) for a variable that is
# about a secret; the same word in a variable that names the secret itself is a weak password.
_PLAIN_WORD: Final = re.compile(r"[a-z][a-z0-9]*([._-][a-z0-9]+)*")
_PLAIN_WORD_LENGTH: Final = 20


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Z0-9]+", _CAMEL.sub(r"\1_\2", name).upper()) if w]


def _sensitive(word: str) -> bool:
    """`PASSWORD`, `DBPASSWORD`, `SECRETS`, `APIKEY`; not `TOKENREF`, whose last part is REF."""
    return word.endswith(("KEY", "KEYS")) or any(
        word.endswith((s, f"{s}S")) for s in _SENSITIVE_WORDS
    )


# A stack's containers repeat the same variable names, and a name's verdict is its own.
@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS or words == ["PWD"]:
        return False
    return any(_sensitive(word) for word in words)


def is_secret_value(name: str, value: str) -> bool:
    """Whether a literal `value` of the secret-looking variable `name` can be a secret: not a
    boolean, number, duration or `$(VAR)` reference, nor a short plain word when the secret
    word is not the name's last (`SECRET_BACKEND=vault`, not `DB_PASSWORD=mysql`)."""
    text = value.strip()
    if not text or _NOT_SECRET_VALUES.fullmatch(text):
        return False
    words = _words(name)
    if words and not _sensitive(words[-1]):
        return not (len(text) <= _PLAIN_WORD_LENGTH and _PLAIN_WORD.fullmatch(text))
    return True


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
    if is_secret_name(var.name) and is_secret_value(var.name, var.value):
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
