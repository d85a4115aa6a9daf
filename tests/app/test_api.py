"""The app in-process against the real PostgreSQL and Redis: API, envelope, headers, CORS,
request ids and logs, auth and metrics."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.log_config import RequestContextFilter, json_formatter
from app.main import create_app
from app.settings import Settings
from tests.support.app_process import InProcessApp, fast_settings
from tests.support.envelope import GENERATED_ID, SECURITY_HEADERS, assert_envelope


@pytest.fixture
def settings_for(database_url: str, redis_url: str) -> Callable[..., Settings]:
    return lambda **overrides: fast_settings(database_url, redis_url, **overrides)


@pytest.fixture
def serve(settings_for: Callable[..., Settings]) -> Iterator[Callable[..., InProcessApp]]:
    opened: list[InProcessApp] = []

    def start(app: Any = None, **overrides: Any) -> InProcessApp:
        running = InProcessApp(app or create_app(settings_for(**overrides))).__enter__()
        opened.append(running)
        return running

    yield start
    for running in opened:
        running.__exit__(None, None, None)


@pytest.fixture
def client(serve: Callable[..., InProcessApp]) -> InProcessApp:
    return serve()


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Records from every logger, formatted by the app's real JSON formatter and filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def create(client: InProcessApp, name: str = "widget", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/items", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_items_crud_roundtrip(client: InProcessApp) -> None:
    created = create(client, "widget", description="a small one")
    assert created["name"] == "widget"
    assert created["description"] == "a small one"
    assert isinstance(created["id"], int)
    assert created["created_at"]

    fetched = client.get(f"/api/v1/items/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created

    assert client.delete(f"/api/v1/items/{created['id']}").status_code == 204
    assert_envelope(client.get(f"/api/v1/items/{created['id']}"), 404, "not_found")
    assert_envelope(client.delete(f"/api/v1/items/{created['id']}"), 404, "not_found")


def test_list_is_paginated_in_creation_order(client: InProcessApp) -> None:
    ids = [create(client, f"item-{n}")["id"] for n in range(5)]

    first = client.get("/api/v1/items", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[:2]
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)

    last = client.get("/api/v1/items", params={"limit": 2, "offset": 4}).json()
    assert [item["id"] for item in last["items"]] == ids[4:]

    default = client.get("/api/v1/items").json()
    assert default["limit"] == 20
    assert len(default["items"]) == 5

    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        assert_envelope(client.get("/api/v1/items", params=params), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "description": "d" * 2001},
        {"description": "no name"},
        {"name": "ok", "unexpected": 1},
        {"name": "nul\x00byte"},
        {"name": 12},
    ],
)
def test_invalid_items_are_refused_with_422(client: InProcessApp, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/items", json=body)
    details = assert_envelope(response, 422, "validation_error")["details"]
    assert details and all({"loc", "msg", "type"} <= set(error) for error in details)
    assert client.get("/api/v1/items").json()["total"] == 0


def test_validation_errors_do_not_echo_the_input(client: InProcessApp) -> None:
    huge = "Q" * 100_000
    response = client.post("/api/v1/items", json={"name": huge})
    assert_envelope(response, 422, "validation_error")
    assert "QQQQQQQQ" not in response.text
    assert len(response.content) < 2_000


def test_every_error_kind_uses_the_envelope(client: InProcessApp) -> None:
    assert_envelope(client.get("/no/such/route"), 404, "not_found")
    assert_envelope(client.get("/api/v1/items/424242"), 404, "not_found")
    not_allowed = client.request("PUT", "/api/v1/items")
    assert_envelope(not_allowed, 405, "method_not_allowed")
    assert "POST" in not_allowed.headers["allow"]
    assert_envelope(client.get("/api/v1/items/not-a-number"), 422, "validation_error")
    assert_envelope(client.get(f"/api/v1/items/{2**63}"), 422, "validation_error")
    assert_envelope(
        client.post(
            "/api/v1/items", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )


def test_unhandled_errors_are_500_envelopes_logged_with_traceback(
    settings_for: Callable[..., Settings],
    serve: Callable[..., InProcessApp],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    app = create_app(settings_for())

    async def broken() -> None:
        raise RuntimeError("internal detail 7f3a")

    app.add_api_route("/test/broken", broken, methods=["GET"])
    client = serve(app)

    response = client.get("/test/broken")
    body = assert_envelope(response, 500, "internal_error")
    assert "internal detail 7f3a" not in response.text

    logged = [line for line in json_logs() if line.get("error_id") == body["error_id"]]
    assert len(logged) == 1
    assert "RuntimeError: internal detail 7f3a" in logged[0]["exc_info"]
    assert logged[0]["request_id"] == response.headers["x-request-id"]


def test_write_endpoints_require_a_valid_api_key_when_configured(
    serve: Callable[..., InProcessApp],
) -> None:
    client = serve(api_keys="key-one, key-two")
    item = {"name": "guarded"}

    missing = client.post("/api/v1/items", json=item)
    assert_envelope(missing, 401, "unauthorized")
    assert "X-API-Key" in missing.headers["www-authenticate"]
    assert_envelope(
        client.post("/api/v1/items", json=item, headers={"X-API-Key": "key-three"}),
        401,
        "unauthorized",
    )

    created = client.post("/api/v1/items", json=item, headers={"X-API-Key": "key-two"})
    assert created.status_code == 201
    item_url = f"/api/v1/items/{created.json()['id']}"
    assert client.get(item_url).status_code == 200, "reads stay open"
    assert_envelope(client.delete(item_url), 401, "unauthorized")
    assert client.delete(item_url, headers={"X-API-Key": "key-one"}).status_code == 204


def test_api_keys_unset_means_auth_off(client: InProcessApp) -> None:
    assert client.post("/api/v1/items", json={"name": "open"}).status_code == 201


def test_request_id_is_echoed_and_on_every_log_line_of_the_request(
    settings_for: Callable[..., Settings],
    serve: Callable[..., InProcessApp],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    app = create_app(settings_for())

    async def chatty() -> dict[str, bool]:
        logging.getLogger("tests.handler").warning("inside the handler")
        return {"ok": True}

    app.add_api_route("/test/chatty", chatty, methods=["GET"])
    client = serve(app)

    response = client.get("/test/chatty", headers={"X-Request-ID": "trace-42.a_b-C"})
    assert response.headers["x-request-id"] == "trace-42.a_b-C"

    lines = [line for line in json_logs() if line.get("path") == "/test/chatty"]
    assert {line["logger"] for line in lines} == {"tests.handler", "app.access"}
    assert all(line["request_id"] == "trace-42.a_b-C" for line in lines)
    access = next(line for line in lines if line["logger"] == "app.access")
    assert access["method"] == "GET"
    assert access["status"] == 200
    assert access["duration_ms"] >= 0
    assert {"timestamp", "level", "message"} <= set(access)


@pytest.mark.parametrize(
    "forged", ["x" * 65, "has space", "semi;colon", "<script>", "ünïcode", "a/b"]
)
def test_unsafe_request_ids_are_replaced(client: InProcessApp, forged: str) -> None:
    response = client.get("/health/live", headers=[(b"X-Request-ID", forged.encode("utf-8"))])
    assert response.headers["x-request-id"] != forged
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_security_headers_on_success_and_error_responses(client: InProcessApp) -> None:
    for response in (client.get("/health/live"), client.get("/nope")):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "strict-transport-security" not in response.headers
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_production_adds_hsts_and_hides_docs(serve: Callable[..., InProcessApp]) -> None:
    client = serve(app_env="production", allowed_origins="https://app.example")
    for response in (client.get("/health/live"), client.get("/nope")):
        assert response.headers["strict-transport-security"].startswith("max-age=")
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 200


def test_cors_echoes_allowed_origins_only(serve: Callable[..., InProcessApp]) -> None:
    client = serve(allowed_origins="https://app.example,https://admin.example")

    allowed = client.get("/api/v1/items", headers={"Origin": "https://admin.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://admin.example"
    assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]

    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key",
    }
    ok = client.options("/api/v1/items", headers={"Origin": "https://app.example", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in ok.headers["access-control-allow-methods"]

    for response in (
        client.get("/api/v1/items", headers={"Origin": "https://evil.example"}),
        client.options("/api/v1/items", headers={"Origin": "https://evil.example", **preflight}),
    ):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    refused = client.options(
        "/api/v1/items", headers={"Origin": "https://evil.example", **preflight}
    )
    assert_envelope(refused, 400, "cors_origin_refused")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_metrics_use_route_templates_and_the_contract_names(client: InProcessApp) -> None:
    item_id = create(client)["id"]
    client.get(f"/api/v1/items/{item_id}")
    client.get("/api/v1/items/987654")
    client.get("/no/such/path/123")
    client.request("BREW", "/api/v1/items")
    client.get("/health/ready")

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    names = {name for name, _, _ in samples}
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_requests_in_progress",
        "db_pool_checked_out_connections",
        "db_pool_size",
        "app_dependency_up",
        "app_circuit_state",
        "rate_limit_rejections_total",
    } <= names

    requests = {
        (labels["method"], labels["route"], labels["status"]): value
        for name, labels, value in samples
        if name == "http_requests_total"
    }
    template = "/api/v1/items/{item_id}"
    assert requests[("GET", template, "200")] == 1
    assert requests[("GET", template, "404")] == 1
    assert requests[("GET", "<unmatched>", "404")] == 1
    assert requests[("OTHER", "/api/v1/items", "405")] == 1
    routes = {labels.get("route") for _, labels, _ in samples if "route" in labels}
    assert not [route for route in routes if re.search(r"/\d+", route)], routes

    values = {(name, labels.get("dependency")): value for name, labels, value in samples}
    assert values[("db_pool_size", None)] == 8
    assert values[("app_dependency_up", "postgres")] == 1
    assert values[("app_dependency_up", "redis")] == 1
    assert values[("app_circuit_state", "postgres")] == values[("app_circuit_state", "redis")] == 0


def test_probes_fail_until_the_lifespan_has_started(settings_for: Callable[..., Settings]) -> None:
    app = create_app(settings_for())

    async def probe() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            paths = ["/health/live", "/health/startup", "/health/ready", "/api/v1/items"]
            return {path: await client.get(path) for path in paths}

    responses = asyncio.run(probe())
    assert responses["/health/live"].status_code == 200
    assert_envelope(responses["/health/startup"], 503, "starting")
    assert_envelope(responses["/health/ready"], 503, "not_ready")
    assert_envelope(responses["/api/v1/items"], 503, "not_ready")


def test_routes_can_be_inspected_without_any_server() -> None:
    settings = Settings(database_url="postgresql://u:p@127.0.0.1:1/none", redis_url="redis://x")
    paths = {route.path for route in create_app(settings).routes}
    assert {"/health/live", "/health/ready", "/health/startup", "/health", "/metrics"} <= paths
    assert {"/api/v1/items", "/api/v1/items/{item_id}"} <= paths
