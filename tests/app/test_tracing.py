"""OpenTelemetry tracing against the real PostgreSQL and Redis: with OTEL_* turning it on, one
request makes a server span with the asyncpg and Redis spans under it (the SDK's in-memory
exporter collects them) and its log lines carry the trace id; with it off, neither the SDK nor
an exporter nor an instrumentation is imported."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.log_config import RequestContextFilter
from app.main import create_app
from app.settings import Settings
from tests.support.app_process import InProcessApp, fast_settings
from tests.support.envelope import assert_envelope
from tests.support.servers import REPO_ROOT


@pytest.fixture
def traced(
    database_url: str, redis_url: str
) -> Iterator[tuple[InProcessApp, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    settings = fast_settings(database_url, redis_url, otel_traces_exporter="console")
    app = create_app(settings, span_exporter=exporter)

    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/api/v1/boom", boom, methods=["GET"])
    with InProcessApp(app) as running:
        yield running, exporter


def test_one_request_makes_a_server_span_with_its_postgres_and_redis_spans(
    traced: tuple[InProcessApp, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    item = client.post("/api/v1/items", json={"name": "traced"}).json()
    exporter.clear()

    assert client.get(f"/api/v1/items/{item['id']}").status_code == 200
    spans = exporter.get_finished_spans()

    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "GET /api/v1/items/{item_id}"
    assert server.attributes["http.route"] == "/api/v1/items/{item_id}"
    assert server.attributes["http.response.status_code"] == 200
    clients = {(s.attributes.get("db.system"), s.name) for s in spans if s.kind is SpanKind.CLIENT}
    assert ("postgresql", "SELECT") in {(system, name.split()[0]) for system, name in clients}
    assert ("redis", "EVALSHA") in clients, "the rate limiter's script"
    (query,) = [s for s in spans if s.attributes.get("db.system") == "postgresql"]
    assert "FROM items WHERE id = $1" in query.attributes["db.statement"]
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == server.context.span_id
               for s in spans if s is not server)  # fmt: skip
    assert server.resource.attributes["service.name"] == "safeguard-app"


def test_probes_and_metrics_make_no_spans(
    traced: tuple[InProcessApp, InMemorySpanExporter],
) -> None:
    client, exporter = traced
    exporter.clear()
    for path in ("/health/live", "/health/ready", "/health", "/metrics"):
        assert client.get(path).status_code == 200
    assert [s.name for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == []


def test_log_lines_and_the_error_envelope_s_log_entry_carry_the_trace_id(
    traced: tuple[InProcessApp, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    client, exporter = traced
    caplog.handler.addFilter(RequestContextFilter())
    exporter.clear()
    with caplog.at_level(logging.INFO):
        body = assert_envelope(client.get("/api/v1/boom"), 500, "internal_error")

    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    trace_id = format(server.context.trace_id, "032x")
    (error,) = [r for r in caplog.records if getattr(r, "error_id", None) == body["error_id"]]
    assert error.trace_id == trace_id
    (access,) = [r for r in caplog.records if r.name == "app.access"]
    assert access.trace_id == trace_id
    assert server.attributes["http.response.status_code"] == 500


_PROBE = """
import asyncio, json, sys
import httpx
from app.main import create_app
from app.settings import Settings

async def main():
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            created = await client.post("/api/v1/items", json={"name": "probe"})
            read = await client.get(f"/api/v1/items/{created.json()['id']}")
    # FastAPI imports OpenTelemetry's API (a dependency of its own) and redis-py the SDK's
    # metrics, when installed; tracing is these.
    prefixes = ("app.telemetry", "opentelemetry.sdk.trace", "opentelemetry.instrumentation",
                "opentelemetry.exporter")
    loaded = sorted(name for name in sys.modules if name.startswith(prefixes))
    print(json.dumps({"statuses": [created.status_code, read.status_code], "loaded": loaded}))

asyncio.run(main())
"""


def _modules_loaded(database_url: str, redis_url: str, **otel: str) -> dict[str, Any]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STARTUP_DB_MAX_ATTEMPTS": "3",
        **otel,
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_tracing_off_the_sdk_and_instrumentations_are_never_imported(
    database_url: str, redis_url: str
) -> None:
    off = _modules_loaded(database_url, redis_url)
    assert off == {"statuses": [201, 200], "loaded": []}
    # The same probe sees them when tracing is on: it would notice an import.
    on = _modules_loaded(database_url, redis_url, OTEL_TRACES_EXPORTER="console")
    assert on["statuses"] == [201, 200]
    assert {"opentelemetry.sdk.trace", "opentelemetry.instrumentation.asyncpg"} <= set(on["loaded"])


@pytest.mark.parametrize(
    ("otel", "enabled"),
    [
        ({}, False),
        ({"otel_exporter_otlp_endpoint": "http://collector:4318"}, True),
        ({"otel_exporter_otlp_traces_endpoint": "https://collector/v1/traces"}, True),
        ({"otel_traces_exporter": "console"}, True),
        ({"otel_traces_exporter": "none", "otel_exporter_otlp_endpoint": "http://c:4318"}, False),
        ({"otel_sdk_disabled": True, "otel_traces_exporter": "otlp"}, False),
        ({"otel_exporter_otlp_endpoint": ""}, False),
    ],
)
def test_the_standard_settings_turn_tracing_on_and_off(otel: dict[str, Any], enabled: bool) -> None:
    settings = Settings(database_url="postgresql://u:p@h/db", redis_url="redis://h", **otel)
    assert settings.tracing_enabled is enabled


def test_the_traces_endpoint_follows_the_specification() -> None:
    base = {"database_url": "postgresql://u:p@h/db", "redis_url": "redis://h"}
    assert Settings(**base).otlp_traces_endpoint == "http://localhost:4318/v1/traces"
    general = Settings(**base, otel_exporter_otlp_endpoint="http://collector:4318/")
    assert general.otlp_traces_endpoint == "http://collector:4318/v1/traces"
    signal = Settings(
        **base,
        otel_exporter_otlp_endpoint="http://collector:4318",
        otel_exporter_otlp_traces_endpoint="http://other:4318/custom",
    )
    assert signal.otlp_traces_endpoint == "http://other:4318/custom"
