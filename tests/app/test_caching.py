"""Caching against the real PostgreSQL and Redis: ETag, Cache-Control and 304 on the API's GET
answers, and the read-through item cache in Redis (filled on read, a tombstone on delete, a
miss whenever Redis cannot answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis

from app.breaker import CircuitBreaker
from app.cache import TOMBSTONE, ItemCache
from app.main import create_app
from app.runtime import is_redis_outage
from tests.support.app_process import InProcessApp, fast_settings
from tests.support.envelope import assert_envelope


@pytest.fixture
def serve(database_url: str, redis_url: str) -> Iterator[Callable[..., InProcessApp]]:
    opened: list[InProcessApp] = []

    def start(**overrides: Any) -> InProcessApp:
        running = InProcessApp(create_app(fast_settings(database_url, redis_url, **overrides)))
        opened.append(running.__enter__())
        return running

    yield start
    for running in opened:
        running.__exit__(None, None, None)


def cache_key(item_id: int) -> str:
    return f"safeguard/item/{item_id}"


def test_get_answers_carry_an_etag_and_a_matching_if_none_match_gets_a_bare_304(
    serve: Callable[..., InProcessApp],
) -> None:
    client = serve()
    item = client.post("/api/v1/items", json={"name": "tagged"}).json()
    path = f"/api/v1/items/{item['id']}"

    first = client.get(path)
    etag = first.headers["etag"]
    assert first.status_code == 200 and first.json() == item
    assert first.headers["cache-control"] == "no-cache"
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34

    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        revalidated = client.get(path, headers={"If-None-Match": sent})
        assert revalidated.status_code == 304, sent
        assert revalidated.content == b""
        assert revalidated.headers["etag"] == etag
        assert revalidated.headers["cache-control"] == "no-cache"
        assert "content-type" not in revalidated.headers
        assert revalidated.headers["x-request-id"], "the outer middleware still decorates it"
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_the_list_s_etag_changes_when_the_list_does(serve: Callable[..., InProcessApp]) -> None:
    client = serve()
    client.post("/api/v1/items", json={"name": "one"})
    before = client.get("/api/v1/items").headers["etag"]
    assert client.get("/api/v1/items", headers={"If-None-Match": before}).status_code == 304

    client.post("/api/v1/items", json={"name": "two"})
    after = client.get("/api/v1/items", headers={"If-None-Match": before})
    assert after.status_code == 200
    assert after.headers["etag"] != before
    assert after.json()["total"] == 2


def test_errors_and_probes_carry_no_validators(serve: Callable[..., InProcessApp]) -> None:
    client = serve()
    missing = client.get("/api/v1/items/999", headers={"If-None-Match": "*"})
    assert_envelope(missing, 404, "not_found")
    for response in (missing, client.get("/health/live"), client.get("/metrics")):
        assert "etag" not in response.headers
        assert "cache-control" not in response.headers


def test_cache_control_max_age_follows_the_setting(serve: Callable[..., InProcessApp]) -> None:
    client = serve(http_cache_max_age_seconds=30)
    assert client.get("/api/v1/items").headers["cache-control"] == "max-age=30"


def test_a_read_fills_the_cache_and_the_next_read_comes_from_it(
    serve: Callable[..., InProcessApp], database_url: str, redis_url: str
) -> None:
    client = serve(item_cache_ttl_seconds=60)
    item = client.post("/api/v1/items", json={"name": "cached", "description": "été"}).json()
    path = f"/api/v1/items/{item['id']}"
    store = redis.Redis.from_url(redis_url)
    assert store.get(cache_key(item["id"])) is None, "a write fills nothing"

    fresh = client.get(path)
    assert store.get(cache_key(item["id"])) == fresh.content
    assert 0 < store.ttl(cache_key(item["id"])) <= 60
    # Changed behind the app's back: only an answer from Redis still shows the old name.
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE items SET name = 'changed' WHERE id = %s", (item["id"],))
    cached = client.get(path)
    assert cached.json()["name"] == "cached"
    assert cached.content == fresh.content
    assert cached.headers["etag"] == fresh.headers["etag"]
    assert cached.headers["content-type"] == fresh.headers["content-type"]


def test_a_delete_leaves_a_tombstone_that_answers_404(
    serve: Callable[..., InProcessApp], redis_url: str
) -> None:
    client = serve(item_cache_ttl_seconds=60)
    item = client.post("/api/v1/items", json={"name": "doomed"}).json()
    path = f"/api/v1/items/{item['id']}"
    client.get(path)

    assert client.delete(path).status_code == 204
    store = redis.Redis.from_url(redis_url)
    assert store.get(cache_key(item["id"])) == TOMBSTONE
    assert_envelope(client.get(path), 404, "not_found")
    assert_envelope(client.delete(path), 404, "not_found")


def test_a_read_that_races_a_delete_cannot_put_the_item_back(redis_url: str) -> None:
    async def run() -> bytes | None:
        store = redis.asyncio.Redis.from_url(redis_url)
        breaker = CircuitBreaker("redis", failures=5, cooldown_seconds=5, is_outage=is_redis_outage)
        cache = ItemCache(store, breaker, ttl_seconds=60)
        try:
            # The read fetched the row, then the delete committed and invalidated first.
            await cache.forget(7)
            await cache.fill(7, b'{"id": 7}')
            return await cache.get(7)
        finally:
            await store.aclose()

    assert asyncio.run(run()) == TOMBSTONE


def test_with_no_ttl_nothing_is_cached(serve: Callable[..., InProcessApp], redis_url: str) -> None:
    client = serve(item_cache_ttl_seconds=0)
    item = client.post("/api/v1/items", json={"name": "uncached"}).json()
    assert client.get(f"/api/v1/items/{item['id']}").status_code == 200
    assert redis.Redis.from_url(redis_url).keys("safeguard/item/*") == []


def test_with_redis_down_items_come_from_postgres_and_never_a_5xx(
    serve: Callable[..., InProcessApp], redis_server: Any, redis_url: str
) -> None:
    client = serve(item_cache_ttl_seconds=60, circuit_breaker_failures=2)
    kept = client.post("/api/v1/items", json={"name": "kept"}).json()
    gone = client.post("/api/v1/items", json={"name": "gone"}).json()
    client.get(f"/api/v1/items/{kept['id']}")

    redis_server.stop()
    try:
        answers = [client.get(f"/api/v1/items/{kept['id']}") for _ in range(5)]
        deleted = client.delete(f"/api/v1/items/{gone['id']}")
        after_delete = client.get(f"/api/v1/items/{gone['id']}")
        metrics = client.get("/metrics").text
    finally:
        redis_server.start()

    assert [(a.status_code, a.json()) for a in answers] == [(200, kept)] * 5
    assert deleted.status_code == 204
    assert_envelope(after_delete, 404, "not_found")
    assert 'app_circuit_state{dependency="redis"} 2.0' in metrics
