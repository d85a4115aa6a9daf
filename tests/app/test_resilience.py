"""The app in-process while PostgreSQL or Redis goes away and comes back, and rate limiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.app_process import InProcessApp, fast_settings
from tests.support.envelope import assert_envelope


@pytest.fixture
def serve(database_url: str, redis_url: str) -> Iterator[Callable[..., InProcessApp]]:
    opened: list[InProcessApp] = []

    def start(**overrides: Any) -> InProcessApp:
        settings: Settings = fast_settings(database_url, redis_url, **overrides)
        running = InProcessApp(create_app(settings)).__enter__()
        opened.append(running)
        return running

    yield start
    for running in opened:
        running.__exit__(None, None, None)


def wait_for_status(client: InProcessApp, path: str, status: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        last = client.get(path)
        if last.status_code == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} stayed {last and last.status_code}: {last and last.text}")


def test_readiness_follows_postgres_and_the_pool_recovers(
    serve: Callable[..., InProcessApp], postgres_server: Any
) -> None:
    client = serve()
    item = client.post("/api/v1/items", json={"name": "survivor"}).json()
    assert client.get("/health/ready").status_code == 200

    postgres_server.stop()
    try:
        not_ready = assert_envelope(client.get("/health/ready"), 503, "not_ready")
        assert not_ready["details"]["failed"] == ["postgres"]
        health = client.get("/health").json()
        assert health["status"] == "unhealthy"
        assert health["checks"]["postgres"]["status"] == "down"
        assert health["checks"]["postgres"]["error"]
        unavailable = assert_envelope(
            client.get(f"/api/v1/items/{item['id']}"), 503, "dependency_unavailable"
        )
        assert unavailable["details"] == {"dependency": "postgres", "circuit_open": False}
        assert client.get("/health/live").status_code == 200
        metrics = client.get("/metrics").text
        assert 'app_dependency_up{dependency="postgres"} 0.0' in metrics
    finally:
        postgres_server.start()

    # Same app, same pool: stale connections are detected and replaced.
    wait_for_status(client, "/health/ready", 200)
    assert client.get(f"/api/v1/items/{item['id']}").json() == item
    assert client.get("/health").json()["status"] == "healthy"


def test_an_idle_pool_survives_a_postgres_restart_unseen(
    serve: Callable[..., InProcessApp], postgres_server: Any
) -> None:
    client = serve()
    item = client.post("/api/v1/items", json={"name": "restarted"}).json()
    assert client.get(f"/api/v1/items/{item['id']}").status_code == 200

    # No request while PostgreSQL restarts: it closes every pooled connection on the way down.
    postgres_server.stop()
    postgres_server.start()

    # asyncpg saw each connection closed, and the pool replaces it at checkout: the client
    # never sees the restart, and every connection the pool now holds is a new one.
    for _ in range(3 * Settings.model_fields["db_pool_size"].default):
        assert client.get(f"/api/v1/items/{item['id']}").json() == item


def test_redis_down_degrades_but_the_api_keeps_serving(
    serve: Callable[..., InProcessApp], redis_server: Any
) -> None:
    client = serve()
    assert client.get("/api/v1/items").headers["x-ratelimit-limit"] == "1000"

    redis_server.stop()
    try:
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert health["checks"]["redis"]["status"] == "down"
        assert health["checks"]["postgres"]["status"] == "up"
        not_ready = assert_envelope(client.get("/health/ready"), 503, "not_ready")
        assert not_ready["details"]["failed"] == ["redis"]

        started = time.monotonic()
        created = client.post("/api/v1/items", json={"name": "fail-open"})
        assert time.monotonic() - started < 2, "a dead Redis must not stall requests"
        assert created.status_code == 201, "rate limiting fails open by default"
        assert "x-ratelimit-limit" not in created.headers
    finally:
        redis_server.start()

    wait_for_status(client, "/health/ready", 200)
    assert client.get("/api/v1/items").headers["x-ratelimit-limit"] == "1000"


def test_redis_down_with_fail_closed_refuses_api_requests(
    serve: Callable[..., InProcessApp], redis_server: Any
) -> None:
    client = serve(rate_limit_fail_open=False)
    assert client.get("/api/v1/items").status_code == 200

    redis_server.stop()
    try:
        refused = assert_envelope(client.get("/api/v1/items"), 503, "rate_limiter_unavailable")
        assert refused["details"] == {"dependency": "redis"}
        assert client.get("/health/live").status_code == 200, "probes are never rate-limited"
    finally:
        redis_server.start()
    wait_for_status(client, "/api/v1/items", 200)


def test_rate_limit_rejects_with_429_and_headers(serve: Callable[..., InProcessApp]) -> None:
    client = serve(rate_limit="3/minute")
    remaining = []
    for _ in range(3):
        response = client.get("/api/v1/items")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        remaining.append(response.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]

    rejected = client.get("/api/v1/items")
    body = assert_envelope(rejected, 429, "rate_limited")
    assert body["details"] == {"limit": "3/minute"}
    assert 1 <= int(rejected.headers["retry-after"]) <= 60
    assert rejected.headers["x-ratelimit-remaining"] == "0"
    assert int(rejected.headers["x-ratelimit-reset"]) > time.time()

    for path in ("/health/live", "/health/ready", "/health", "/metrics"):
        assert client.get(path).status_code == 200, f"{path} must not be rate-limited"
    metrics = client.get("/metrics").text
    assert "rate_limit_rejections_total 1.0" in metrics


def test_valid_api_keys_get_their_own_bucket_and_made_up_keys_do_not(
    serve: Callable[..., InProcessApp],
) -> None:
    client = serve(rate_limit="2/minute", api_keys="real-key")
    for _ in range(2):
        assert client.get("/api/v1/items").status_code == 200
    assert client.get("/api/v1/items").status_code == 429

    made_up = client.get("/api/v1/items", headers={"X-API-Key": "made-up"})
    assert made_up.status_code == 429, "an unknown key must not open a fresh bucket"
    keyed = client.get("/api/v1/items", headers={"X-API-Key": "real-key"})
    assert keyed.status_code == 200
    assert keyed.headers["x-ratelimit-remaining"] == "1"


def test_the_limit_holds_across_replicas(serve: Callable[..., InProcessApp]) -> None:
    first, second = serve(rate_limit="3/minute"), serve(rate_limit="3/minute")
    assert first.get("/api/v1/items").status_code == 200
    assert first.get("/api/v1/items").status_code == 200
    assert second.get("/api/v1/items").status_code == 200
    assert second.get("/api/v1/items").status_code == 429
    assert first.get("/api/v1/items").status_code == 429
