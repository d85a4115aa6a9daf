"""Hostile input: generated requests from the app's own OpenAPI schema (schemathesis), malformed
HTTP at the socket level, and malformed stack files and manifests given to `python -m infra`.

The app runs as `python -m app` on loopback against the real PostgreSQL and Redis.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.settings import Settings
from tests.support.app_process import APP_REDIS_DB, REPO_ROOT, app_env, flush_redis
from tests.support.servers import LiveApp

API_KEY = "hostile-test-key"
# The schema under test is the app's own, read without any server or environment.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(
        Settings(database_url="postgresql://u:p@localhost/db", redis_url="redis://x")
    ).openapi()
)


@pytest.fixture(scope="module")
def served(postgres_server: Any, redis_server: Any, tmp_path_factory: Any) -> Iterator[LiveApp]:
    name = "hostile"
    postgres_server.drop_database(name)
    url = postgres_server.create_database(name)
    flush_redis(redis_server.url(APP_REDIS_DB))
    env = app_env(url, redis_server.url(APP_REDIS_DB), RATE_LIMIT="100000/minute", API_KEYS=API_KEY)
    app = LiveApp(tmp_path_factory.mktemp("hostile"), env).start()
    try:
        yield app
    finally:
        app.stop()
        if not postgres_server.is_running():
            postgres_server.start()
        postgres_server.drop_database(name)


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_500_and_match_the_schema(case: Any, served: LiveApp) -> None:
    # Every schemathesis check runs: no 5xx, documented status codes, bodies and headers that
    # match the schema (errors included: they are documented as the envelope), invalid data
    # refused, and write endpoints refusing requests without the API key.
    case.call_and_validate(base_url=served.base_url, headers={"X-API-Key": API_KEY})


def raw_request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library fixing them up); parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may answer and close before reading all of an oversized request.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def post(body: bytes, *headers: bytes) -> bytes:
    lines = [
        b"POST /api/v1/items HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: application/json",
        b"X-API-Key: " + API_KEY.encode(),
        b"Connection: close",
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_raw_envelope(answer: tuple[int, dict[str, str], bytes], status: int, code: str) -> dict:
    got_status, headers, body = answer
    assert got_status == status, body[:300]
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert set(envelope) == {"error_id", "error_code", "message", "timestamp", "details"}
    assert envelope["error_code"] == code
    assert "Traceback" not in body.decode()
    return envelope


def test_a_declared_oversized_body_is_refused_before_it_is_read(served: LiveApp) -> None:
    port = served.port
    # Content-Length claims 50 MB; only a little is sent, so a server that waited to read it
    # would hang until the socket timeout instead of answering.
    answer = raw_request(port, post(b"x" * 1000, b"Content-Length: 50000000"))
    envelope = assert_raw_envelope(answer, 413, "payload_too_large")
    assert envelope["details"] == {"limit": 1_048_576}


def test_a_chunked_oversized_body_is_cut_off(served: LiveApp) -> None:
    port = served.port
    body = b'{"name": "' + b"a" * 1_100_000 + b'"}'
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    answer = raw_request(port, post(chunked, b"Transfer-Encoding: chunked"))
    assert_raw_envelope(answer, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"name": ', 422, "validation_error"),
        (b'{"name": "\xff\xfe"}', 400, "bad_request"),
        (b'["name", "x"]', 422, "validation_error"),
        (b'{"name": "x", "name": {"$gt": ""}}', 422, "validation_error"),
    ],
    ids=["truncated-json", "invalid-utf8", "json-array", "duplicate-key-object"],
)
def test_malformed_bodies_get_a_clear_4xx_envelope(
    served: LiveApp, body: bytes, status: int, code: str
) -> None:
    port = served.port
    request = post(body, b"Content-Length: %d" % len(body))
    assert_raw_envelope(raw_request(port, request), status, code)


def test_huge_headers_get_431(served: LiveApp) -> None:
    port = served.port
    request = (
        b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + b"X-Padding: "
        + b"a" * 100_000
        + b"\r\n\r\n"
    )
    envelope = assert_raw_envelope(raw_request(port, request), 431, "headers_too_large")
    assert envelope["details"] == {"limit": 32_768}


@pytest.mark.parametrize(
    "forged",
    [b"\xc3\xa9vil<script>", b"a" * 65, b"id\twith tab", b'x", "level": "CRITICAL'],
    ids=["non-ascii-html", "too-long", "tab", "log-injection"],
)
def test_a_forged_request_id_is_replaced_on_every_answer(served: LiveApp, forged: bytes) -> None:
    port = served.port
    request = (
        b"GET /no/such/route HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Request-ID: " + forged + b"\r\n\r\n"
    )
    answer = raw_request(port, request)
    assert_raw_envelope(answer, 404, "not_found")
    request_id = answer[1]["x-request-id"]
    assert request_id.encode() != forged
    assert len(request_id) == 32 and all(c in "0123456789abcdef" for c in request_id)
    logged = [
        json.loads(line)
        for line in served.logs().splitlines()
        if line.startswith("{") and request_id in line
    ]
    assert logged and all(entry["request_id"] == request_id for entry in logged)


def test_an_unparseable_request_is_refused_by_the_server(served: LiveApp) -> None:
    # The HTTP parser refuses this before the app sees it, so the body is uvicorn's plain text,
    # not the envelope; behind the stacks' nginx the edge answers such requests itself.
    port = served.port
    status, _, body = raw_request(port, post(b"", b"Content-Length: abc"))
    assert status == 400
    assert b"Traceback" not in body


def test_the_app_survives_the_hostile_requests(served: LiveApp) -> None:
    with httpx.Client(base_url=served.base_url, timeout=10) as client:
        assert client.get("/health/ready").status_code == 200
    assert served.process is not None and served.process.poll() is None
    statuses = [
        json.loads(line).get("status")
        for line in served.logs().splitlines()
        if line.startswith("{") and '"app.access"' in line
    ]
    assert statuses, "the access log must have recorded the requests"
    assert not [s for s in statuses if s >= 500]


# --- malformed stack files and manifests given to the offline tool ---------------------------

_PROJECT_PARTS = ("app", "components", "infra", "policies", "spec", "stacks", "Pulumi.yaml")


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: Any) -> Path:
    """The project in a temp dir, so broken stack files never touch the checkout."""
    root = tmp_path_factory.mktemp("project")
    for part in _PROJECT_PARTS:
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / part)
    return root


def infra(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stack_command(root: Path, command: str, stack: str) -> subprocess.CompletedProcess[str]:
    extra = ("--out", str(root / "render")) if command == "render" else ()
    return infra(root, command, "--stack", stack, *extra)


_WRONG_TYPES = """\
config:
  safeguard:app:
    replicas: three
    image: 42
  safeguard:edge: [1, 2]
"""


@pytest.mark.parametrize("command", ["render", "check"])
def test_a_stack_file_with_wrong_types_names_every_field(project_copy: Path, command: str) -> None:
    (project_copy / "Pulumi.wrongtypes.yaml").write_text(_WRONG_TYPES)
    result = stack_command(project_copy, command, "wrongtypes")
    # Both report input errors with 2, the offline tool's code for "could not run".
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for field in ("safeguard:app.replicas", "safeguard:app.image", "safeguard:edge"):
        assert field in result.stderr


_BROKEN_STACKS = {
    "broken": "config:\n  safeguard:app: {replicas: [oops\n",
    "listy": "- config\n- is not a list\n",
    "config-list": "config: [a, b]\n",
}


@pytest.mark.parametrize("stack", sorted(_BROKEN_STACKS))
@pytest.mark.parametrize("command", ["render", "check"])
def test_a_broken_stack_file_is_reported_by_name(
    project_copy: Path, command: str, stack: str
) -> None:
    (project_copy / f"Pulumi.{stack}.yaml").write_text(_BROKEN_STACKS[stack])
    result = stack_command(project_copy, command, stack)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"Pulumi.{stack}.yaml" in result.stderr


_MANIFESTS: dict[str, tuple[bytes, int, tuple[str, ...]]] = {
    "broken-yaml": (
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x\n",
        2,
        ("bad.yaml", "line 4"),
    ),
    "not-an-object": (b"just a string\n", 2, ("bad.yaml#1", "not a Kubernetes object")),
    "missing-fields": (b"kind: Deployment\n", 2, ("bad.yaml#1", "apiVersion", "metadata")),
    "invalid-utf8": (b"apiVersion: v1\nkind: \xff\xfe\n", 2, ("bad.yaml", "utf-8")),
    "wrong-field-type": (
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  namespace: app\n"
        b"spec:\n  replicas: 1\n  template: 5\n",
        1,
        ("bad.yaml#1", "spec.template"),
    ),
}


@pytest.mark.parametrize("case", sorted(_MANIFESTS))
def test_malformed_manifests_get_a_clear_error(tmp_path: Path, case: str) -> None:
    content, exit_code, mentions = _MANIFESTS[case]
    (tmp_path / "bad.yaml").write_bytes(content)
    result = infra(REPO_ROOT, "check", "--manifests", str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert "Traceback" not in output
    for mention in mentions:
        assert mention in output
