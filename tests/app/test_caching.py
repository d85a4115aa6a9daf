"""HTTP caching against the real PostgreSQL and Redis: ETag, Cache-Control and 304 on the API's
GET answers. (The read-through item cache in Redis was measured and dropped: BENCHMARKS.md.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.main import create_app
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
