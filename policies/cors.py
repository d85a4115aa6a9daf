"""The no-wildcard-CORS policies, wherever a wildcard can hide: env vars (Kubernetes and Docker),
allow-all flags such as django-cors-headers' `CORS_ALLOW_ALL_ORIGINS=true`, ingress-nginx
annotations and snippets, nginx configuration in ConfigMaps and Docker uploads; and, over the
whole stack, env vars a workload takes from a ConfigMap (`valueFrom.configMapKeyRef`, `envFrom`
with a prefix), whose values only the ConfigMap holds."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from _framework import Resource, StackReporter, resource_policy, stack_policy
from _values import Findings, is_unknown, join
from _workloads import (
    CONFIG_MAP,
    DOCKER_CONTAINER,
    INGRESSES,
    K8S_WORKLOADS,
    EnvVar,
    containers,
    docker_env,
    k8s_env,
    label,
    pod_spec,
)
from pulumi_policy import EnforcementLevel

# An origin no allowlist should accept: a pattern matching it accepts any origin.
_ANY_ORIGIN: Final = "https://attacker.invalid"
_FIX: Final = "list the allowed origins explicitly (e.g. https://app.example.com)"
_NGINX_FIX: Final = (
    "send only allowlisted origins: map $http_origin to an allowlist "
    '(map $http_origin $cors_origin { default ""; "~^https://app\\.example\\.com$" '
    "$http_origin; }) and add_header Access-Control-Allow-Origin $cors_origin"
)
_ENABLE_CORS: Final = "nginx.ingress.kubernetes.io/enable-cors"
_ALLOW_ORIGIN: Final = "nginx.ingress.kubernetes.io/cors-allow-origin"
_ACAO: Final = "access-control-allow-origin"

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[^\s;]+')
_ADD_HEADER = re.compile(r"\badd_header\s+")
_MORE_SET_HEADERS = re.compile(r"\bmore_set_headers\s+")
_MAP_START = re.compile(r"\bmap\s+\$http_origin\s+\$(\w+)\s*\{")
_IF_START = re.compile(r"\bif\s*\(")
_IF_ORIGIN = re.compile(r"\$http_origin\s*(~\*|~|=)\s*(.+)", re.DOTALL)


# The values an allow-all flag is on with: django-environ's true strings and strtobool's.
_TRUE: Final = frozenset({"true", "t", "yes", "y", "on", "ok", "1"})
_CAMEL: Final = re.compile(r"([a-z0-9])([A-Z])")


# --- env vars --------------------------------------------------------------------------------


def is_cors_name(name: str) -> bool:
    upper = name.upper()
    return "CORS" in upper or "ORIGIN" in upper


def is_allow_all_flag(name: str) -> bool:
    """A switch that allows every origin when on: django-cors-headers' `CORS_ALLOW_ALL_ORIGINS`
    and its older `CORS_ORIGIN_ALLOW_ALL`, `CORS_ALLOW_ANY_ORIGIN`, `corsAllowAllOrigins`,
    `CORS_ALLOW_ALL`; not `CORS_ALLOW_ALL_HEADERS`, which is about headers."""
    words = [w for w in re.split(r"[^A-Z0-9]+", _CAMEL.sub(r"\1_\2", name).upper()) if w]
    found = set(words)
    if not {"ALL", "ANY"} & found:
        return False
    return bool({"ORIGIN", "ORIGINS"} & found) or ("CORS" in found and words[-1] in ("ALL", "ANY"))


def _holds_star(value: str) -> bool:
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if parsed == "*" or (isinstance(parsed, list) and any(str(p).strip() == "*" for p in parsed)):
        return True
    tokens = re.split(r"[\s,;]+", value.strip().strip("[]()"))
    return any(token.strip("'\"") == "*" for token in tokens)


def wildcard_origin(name: str, value: str) -> str | None:
    """Why an origin setting called `name` with `value` allows every origin, or None."""
    value = value.strip()
    if not value:
        return None
    if is_allow_all_flag(name):
        if value.lower() in _TRUE:
            return f"{name} is {value!r}, which allows every origin"
        return None
    upper = name.upper()
    if "REGEX" in upper or "PATTERN" in upper:
        try:
            if re.fullmatch(value, _ANY_ORIGIN):
                return f"the pattern {value!r} matches any origin"
        except re.error:
            pass
    if _holds_star(value):
        return f"{value!r} holds the wildcard '*', which allows every origin"
    return None


def _check_env(where: str, owner: str, variables: Iterator[EnvVar], findings: Findings) -> None:
    for var in variables:
        if not is_cors_name(var.name) or not isinstance(var.value, str):
            continue
        if reason := wildcard_origin(var.name, var.value):
            findings.fail(f"{where}: {owner}env {var.name} ({var.path}): {reason}; {_FIX}.")


# --- nginx configuration ---------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    lines = []
    for line in text.splitlines():
        quote = None
        for index, char in enumerate(line):
            if quote:
                if char == quote:
                    quote = None
            elif char in "\"'":
                quote = char
            elif char == "#":
                line = line[:index]
                break
        lines.append(line)
    return "\n".join(lines)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return token[1:-1]
    return token


def _until(config: str, start: int, stops: str) -> int:
    """Index of the first character of `stops` at or after `start`, outside quotes."""
    quote = None
    for index in range(start, len(config)):
        char = config[index]
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in stops:
            return index
    return len(config)


def _statement_tokens(config: str, start: int) -> list[str]:
    """The tokens of the nginx statement starting at `start`, up to its `;`."""
    return _TOKEN.findall(config[start : _until(config, start, ";{}")])


def _header_values(config: str) -> Iterator[str]:
    """Values given to Access-Control-Allow-Origin by add_header or more_set_headers."""
    for match in _ADD_HEADER.finditer(config):
        tokens = _statement_tokens(config, match.end())
        if len(tokens) >= 2 and _unquote(tokens[0]).lower() == _ACAO:
            yield _unquote(tokens[1]).strip()
    for match in _MORE_SET_HEADERS.finditer(config):
        for token in _statement_tokens(config, match.end()):
            name, sep, value = _unquote(token).partition(":")
            if sep and name.strip().lower() == _ACAO:
                yield value.strip()


def _matches_any_origin(pattern: str, case_insensitive: bool) -> bool:
    try:
        return re.search(pattern, _ANY_ORIGIN, re.IGNORECASE if case_insensitive else 0) is not None
    except re.error:
        return False


@dataclass
class _OriginMap:
    """`map $http_origin $var { ... }`: the values an arbitrary origin can end up with."""

    values_for_any_origin: list[str] = field(default_factory=list)


def _block_body(config: str, start: int) -> str:
    depth, quote = 1, None
    for index in range(start, len(config)):
        char = config[index]
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return config[start:index]
    return config[start:]


def _origin_maps(config: str) -> dict[str, _OriginMap]:
    maps: dict[str, _OriginMap] = {}
    for match in _MAP_START.finditer(config):
        origin_map = maps.setdefault(match.group(1), _OriginMap())
        body = _block_body(config, match.end())
        position = 0
        while position < len(body):
            end = _until(body, position, ";")
            tokens = [_unquote(t) for t in _TOKEN.findall(body[position:end])]
            position = end + 1
            if len(tokens) < 2 or tokens[0] in ("hostnames", "volatile", "include"):
                continue
            key, value = tokens[0], tokens[1]
            if key == "default" or (
                key.startswith("~")
                and _matches_any_origin(key.lstrip("~*"), case_insensitive=key.startswith("~*"))
            ):
                origin_map.values_for_any_origin.append(value)
    return maps


def _if_conditions(config: str) -> Iterator[str]:
    for match in _IF_START.finditer(config):
        depth, quote = 1, None
        for index in range(match.end(), len(config)):
            char = config[index]
            if quote:
                if char == quote:
                    quote = None
            elif char in "\"'":
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    yield config[match.end() : index]
                    break


def _has_if_allowlist(config: str) -> bool:
    for condition in _if_conditions(config):
        test = _IF_ORIGIN.fullmatch(condition.strip())
        if test is None:
            continue
        operator, operand = test.group(1), _unquote(test.group(2).strip())
        if operator == "=" or not _matches_any_origin(operand, operator == "~*"):
            return True
    return False


def nginx_cors_problems(text: str) -> list[str]:
    """Ways an nginx configuration lets every origin read responses cross-origin."""
    if "add_header" not in text and "more_set_headers" not in text:
        # Nothing sets a header, so nothing to judge: skips the character-by-character parse of
        # large values that are not nginx configuration (dashboards, rule files).
        return []
    config = _strip_comments(text)
    maps = _origin_maps(config)
    allowlisted = _has_if_allowlist(config) or any(
        "$http_origin" not in m.values_for_any_origin and "*" not in m.values_for_any_origin
        for m in maps.values()
    )
    problems = []
    for value in _header_values(config):
        if value == "*":
            problems.append("sets Access-Control-Allow-Origin to *")
        elif value == "$http_origin" and not allowlisted:
            problems.append(
                "reflects $http_origin in Access-Control-Allow-Origin with no allowlist "
                "(no map $http_origin or if ($http_origin ~ ...) in the same configuration)"
            )
        elif value.startswith("$") and (origin_map := maps.get(value[1:].strip("{}"))):
            if "*" in origin_map.values_for_any_origin:
                problems.append(f"sends * for any origin through map $http_origin {value}")
            elif "$http_origin" in origin_map.values_for_any_origin:
                problems.append(
                    f"reflects any origin through map $http_origin {value} (its default or a "
                    "match-all pattern maps to $http_origin)"
                )
    return problems


def _check_nginx_text(where: str, subject: str, text: str, findings: Findings) -> None:
    for problem in nginx_cors_problems(text):
        findings.fail(f"{where}: {subject} {problem}; {_NGINX_FIX}.")


# --- per resource type -----------------------------------------------------------------------


def _check_workload(resource: Resource, findings: Findings) -> None:
    pod = pod_spec(resource.type, resource.props, findings)
    if pod is None:
        return
    where = label(resource.type, resource.name)
    for container in containers(pod, findings):
        _check_env(where, f"{container.title}: ", k8s_env(container, findings), findings)


def _decode_base64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _check_docker(resource: Resource, findings: Findings) -> None:
    where = label(resource.type, resource.name)
    _check_env(where, "", docker_env(resource.props, findings, set()), findings)
    uploads = findings.field(resource.props, "uploads", "", list)
    for _, path, upload in findings.items(uploads, "uploads", dict):
        subject = f"{path} ({upload.get('file')})"
        content = findings.field(upload, "content", path, str)
        if isinstance(content, str):
            _check_nginx_text(where, subject, content, findings)
        encoded = findings.field(upload, "contentBase64", path, str)
        if isinstance(encoded, str) and (decoded := _decode_base64(encoded)) is not None:
            _check_nginx_text(where, subject, decoded, findings)


def _check_ingress(resource: Resource, findings: Findings) -> None:
    where = label(resource.type, resource.name)
    metadata = findings.field(resource.props, "metadata", "", dict)
    annotations = findings.field(metadata, "annotations", "metadata", dict)
    if not isinstance(annotations, Mapping):
        return
    path = "metadata.annotations"
    enable = findings.check_value(annotations.get(_ENABLE_CORS), f"{path}.{_ENABLE_CORS}", str)
    if isinstance(enable, str) and enable.strip().lower() == "true":
        origin = findings.check_value(
            annotations.get(_ALLOW_ORIGIN), f"{path}.{_ALLOW_ORIGIN}", str
        )
        if origin is None or (isinstance(origin, str) and not origin.strip()):
            findings.fail(
                f"{where}: {_ENABLE_CORS} is true without {_ALLOW_ORIGIN}, whose default is *; "
                f"set {_ALLOW_ORIGIN} to the allowed origins."
            )
        elif isinstance(origin, str) and (reason := wildcard_origin(_ALLOW_ORIGIN, origin)):
            findings.fail(f"{where}: {path}.{_ALLOW_ORIGIN}: {reason}; {_FIX}.")
    for key, value in annotations.items():
        if key.endswith(("snippet", "snippets")):
            text = findings.check_value(value, f"{path}.{key}", str)
            if isinstance(text, str):
                _check_nginx_text(where, f"annotation {key}", text, findings)


def _check_config_map(resource: Resource, findings: Findings) -> None:
    where = label(resource.type, resource.name)
    data = findings.field(resource.props, "data", "", dict)
    if isinstance(data, Mapping):
        for key, raw in data.items():
            value = findings.check_value(raw, join("data", key), str)
            if not isinstance(value, str):
                continue
            if is_cors_name(key) and (reason := wildcard_origin(key, value)):
                findings.fail(f"{where}: data.{key} (used as env via envFrom): {reason}; {_FIX}.")
            _check_nginx_text(where, f"data.{key}", value, findings)
    binary = findings.field(resource.props, "binaryData", "", dict)
    if isinstance(binary, Mapping):
        for key, raw in binary.items():
            if isinstance(raw, str) and (decoded := _decode_base64(raw)) is not None:
                _check_nginx_text(where, f"binaryData.{key}", decoded, findings)


def check_no_wildcard_cors(resource: Resource, findings: Findings) -> None:
    if resource.type in K8S_WORKLOADS:
        _check_workload(resource, findings)
    elif resource.type == DOCKER_CONTAINER:
        _check_docker(resource, findings)
    elif resource.type in INGRESSES:
        _check_ingress(resource, findings)
    elif resource.type == CONFIG_MAP:
        _check_config_map(resource, findings)


# --- env taken from ConfigMaps, over the stack ------------------------------------------------


def _namespace(props: Mapping[str, Any]) -> Any:
    metadata = props.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else "default"


def _config_maps(resources: list[Resource]) -> dict[tuple[Any, Any], Any]:
    """ConfigMap `data` by (namespace, name)."""
    found: dict[tuple[Any, Any], Any] = {}
    for resource in resources:
        if resource.type != CONFIG_MAP:
            continue
        metadata = resource.props.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        found[(_namespace(resource.props), name)] = resource.props.get("data")
    return found


def _referenced_value(
    maps: Mapping[tuple[Any, Any], Any], namespace: Any, ref: Any, unknown: list[str], path: str
) -> Any:
    """The value a configMapKeyRef resolves to: a string, or None when it cannot be read here
    (a ConfigMap outside the stack, a key it does not hold; unknown values are recorded)."""
    if not isinstance(ref, Mapping):
        return None
    name, key = ref.get("name"), ref.get("key")
    if is_unknown(name) or is_unknown(key) or is_unknown(namespace):
        unknown.append(path)
        return None
    data = maps.get((namespace, name))
    if is_unknown(data) or (isinstance(data, Mapping) and is_unknown(data.get(key))):
        unknown.append(path)
        return None
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) else None


def _from_config_maps(
    resource: Resource, maps: Mapping[tuple[Any, Any], Any], unknown: list[str]
) -> Iterator[str]:
    """Why env the workload takes from its namespace's ConfigMaps allows every origin. Malformed
    fields are left to the resource policies, which report them."""
    scratch = Findings(label(resource.type, resource.name))
    pod = pod_spec(resource.type, resource.props, scratch)
    if pod is None:
        return
    namespace = _namespace(resource.props)
    for container in containers(pod, scratch):
        for var in k8s_env(container, scratch):
            ref = var.source.get("configMapKeyRef") if var.source else None
            if ref is None or not is_cors_name(var.name):
                continue
            where = f"{var.path}.valueFrom.configMapKeyRef"
            value = _referenced_value(maps, namespace, ref, unknown, where)
            if isinstance(value, str) and (reason := wildcard_origin(var.name, value)):
                yield (
                    f"{container.title}: env {var.name} ({where}: ConfigMap "
                    f"{ref.get('name')!r} key {ref.get('key')!r}): {reason}"
                )
        sources = scratch.field(container.spec, "envFrom", container.path, list)
        for _, path, source in scratch.items(sources, join(container.path, "envFrom"), dict):
            prefix, ref = source.get("prefix"), source.get("configMapRef")
            if not isinstance(prefix, str) or not prefix or not isinstance(ref, Mapping):
                continue  # without a prefix the ConfigMap's own keys are checked on it
            data = maps.get((namespace, ref.get("name")))
            if is_unknown(data) or is_unknown(ref.get("name")):
                unknown.append(path)
                continue
            for key, value in data.items() if isinstance(data, Mapping) else ():
                if not isinstance(value, str):
                    continue
                if is_cors_name(key) and wildcard_origin(key, value):
                    continue  # no-wildcard-cors reports it on the ConfigMap itself
                name = f"{prefix}{key}"
                if is_cors_name(name) and (reason := wildcard_origin(name, value)):
                    yield (
                        f"{container.title}: env {name} ({path}: prefix {prefix!r} on "
                        f"ConfigMap {ref.get('name')!r} key {key!r}): {reason}"
                    )


def check_cors_from_config_maps(
    resources: list[Resource], config: Mapping[str, Any], reporter: StackReporter
) -> None:
    maps = _config_maps(resources)
    for resource in resources:
        if resource.type not in K8S_WORKLOADS:
            continue
        unknown: list[str] = []
        problems = list(_from_config_maps(resource, maps, unknown))
        for path in unknown:
            reporter.findings.unknown(f"{resource.name}: {path}")
        if problems and not reporter.exempt(resource):
            where = label(resource.type, resource.name)
            for problem in problems:
                reporter.fail(resource, f"{where}: {problem}; {_FIX}.")


POLICIES: Final = [
    resource_policy(
        name="no-wildcard-cors",
        description="CORS must allow listed origins only, never * or any reflected origin.",
        resource_types=K8S_WORKLOADS | INGRESSES | {DOCKER_CONTAINER, CONFIG_MAP},
        check=check_no_wildcard_cors,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    stack_policy(
        name="no-wildcard-cors-from-configmaps",
        description="CORS settings a workload reads from a ConfigMap (valueFrom.configMapKeyRef, "
        "envFrom with a prefix) must allow listed origins only.",
        resource_types=K8S_WORKLOADS | {CONFIG_MAP},
        check=check_cors_from_config_maps,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
