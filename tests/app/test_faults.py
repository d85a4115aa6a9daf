"""`python -m app` under a bounded concurrent load while its dependencies fail: PostgreSQL
stopped and restarted, Redis stopped, a SIGTERM, and a table lock that stalls queries.

Each test drives real HTTP on loopback at a subprocess and asserts what clients saw (statuses,
envelopes, latency) and what PostgreSQL holds afterwards.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.app_process import app_env
from tests.support.load import Load, status_of, wait_for
from tests.support.servers import LiveApp


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveApp]]:
    started: list[LiveApp] = []

    def start(env: dict[str, str], module: str = "app") -> LiveApp:
        app = LiveApp(tmp_path, env, module=module, name=f"app-{len(started)}")
        started.append(app)
        return app.start()

    yield start
    for app in started:
        app.stop()


def fault_env(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """Production-like settings with short timeouts, so faults show within a test's patience."""
    settings = {
        "RATE_LIMIT": "100000/minute",
        "DB_POOL_TIMEOUT_SECONDS": "2",
        "DB_CONNECT_TIMEOUT_SECONDS": "1",
        "HEALTH_CHECK_TIMEOUT_SECONDS": "1",
        "REDIS_SOCKET_TIMEOUT_SECONDS": "0.3",
        "REDIS_CONNECT_TIMEOUT_SECONDS": "0.3",
    }
    return app_env(database_url, redis_url, **{**settings, **overrides})


def test_postgres_stopped_under_write_load(
    serve: Callable[..., LiveApp], database_url: str, redis_url: str, postgres_server: Any
) -> None:
    app = serve(fault_env(database_url, redis_url))
    load = Load(lambda c, name: c.post(f"{app.base_url}/api/v1/items", json={"name": name}))
    load.start()
    try:
        load.wait_until_answered(20)
        postgres_server.stop()
        stopped = time.monotonic()
        not_ready_after = wait_for(
            lambda: status_of(f"{app.base_url}/health/ready") == 503, 5, what="ready -> 503"
        )
        live = [status_of(f"{app.base_url}/health/live", timeout=1) for _ in range(5)]
        time.sleep(1.5)
    finally:
        postgres_server.start()
    restarted = time.monotonic()
    try:
        ready_after = wait_for(
            lambda: status_of(f"{app.base_url}/health/ready") == 200, 15, what="ready -> 200"
        )
        # Writes succeed again on their own, with no restart of the app.
        wait_for(
            lambda: any(o.status == 201 for o in load.since(restarted + ready_after)),
            10,
            what="a write succeeding after PostgreSQL came back",
        )
    finally:
        outcomes = load.stop()

    assert not_ready_after < 5
    assert live == [200] * 5, "liveness must not depend on PostgreSQL"
    statuses = Counter(o.status for o in outcomes)
    assert statuses[500] == 0, f"no 500 storm: {statuses}"
    assert [o for o in outcomes if o.failure] == [], "the app must answer every request"
    during = [o for o in outcomes if stopped <= o.started <= restarted]
    assert any(o.status == 503 for o in during), f"the outage must be seen: {statuses}"
    refused = Counter(o.error_code for o in outcomes if o.status != 201)
    assert set(refused) <= {"dependency_unavailable"}, refused
    assert ready_after < 10

    written = [o.name for o in outcomes if o.status == 201]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT name, count(*) FROM items GROUP BY name").fetchall()
    stored = dict(rows)
    assert [n for n in written if n not in stored] == [], "an acknowledged write was lost"
    assert [n for n, count in stored.items() if count > 1] == [], "a write was duplicated"


def circuit_state(base_url: str, dependency: str) -> float | None:
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        for sample in family.samples:
            if sample.name == "app_circuit_state" and sample.labels["dependency"] == dependency:
                return sample.value
    return None


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def test_a_postgres_that_stops_answering_trips_the_breaker_and_recovers_within_a_cool_down(
    serve: Callable[..., LiveApp], database_url: str, redis_url: str, postgres_server: Any
) -> None:
    pool_timeout, cooldown = 3.0, 3.0
    env = fault_env(
        database_url,
        redis_url,
        DB_POOL_SIZE="4",
        DB_POOL_TIMEOUT_SECONDS=str(pool_timeout),
        CIRCUIT_BREAKER_FAILURES="3",
        CIRCUIT_BREAKER_COOLDOWN_SECONDS=str(cooldown),
    )
    app = serve(env)
    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        item = client.post("/api/v1/items", json={"name": "frozen"}).json()
    # More workers than pooled connections: while PostgreSQL hangs, four requests hold the
    # connections and the rest queue for one, which is what the pool timeout bounds.
    load = Load(lambda c, name: c.get(f"{app.base_url}/api/v1/items/{item['id']}"), workers=8)
    load.start()
    try:
        load.wait_until_answered(20)
        assert circuit_state(app.base_url, "postgres") == 0
        postgres_server.pause()
        opened_after = wait_for(
            lambda: circuit_state(app.base_url, "postgres") == 2, 20, what="breaker open"
        )
        time.sleep(2.5)
    finally:
        postgres_server.resume()
    resumed = time.monotonic()
    try:
        wait_for(lambda: circuit_state(app.base_url, "postgres") == 0, cooldown + 5, what="closed")
        time.sleep(0.5)
    finally:
        outcomes = load.stop()

    assert opened_after < pool_timeout * 3
    assert [o for o in outcomes if o.failure or o.status not in (200, 503)] == []
    failed = [o for o in outcomes if o.status == 503]
    assert {o.error_code for o in failed} == {"dependency_unavailable"}
    waited = [
        o.seconds for o in failed if o.details == {"dependency": "postgres", "circuit_open": False}
    ]
    refused = [
        o.seconds for o in failed if o.details == {"dependency": "postgres", "circuit_open": True}
    ]
    assert len(waited) + len(refused) == len(failed)
    assert len(waited) >= 3 and len(refused) >= 50, (len(waited), len(refused))
    # Without the breaker every failing request waits out the pool timeout; once it is open,
    # they are answered in a small fraction of it.
    assert min(waited) >= pool_timeout * 0.9, sorted(waited)
    assert p99(refused) < pool_timeout / 10, sorted(refused)[-5:]
    # Back within one cool-down of PostgreSQL's return: the first trial after it succeeds (the
    # breaker refuses others while it is in flight), and from then on every request is served.
    trial = min(
        (o for o in outcomes if o.started >= resumed and o.status == 200), key=lambda o: o.started
    )
    assert trial.started - resumed < cooldown + 1.0
    after = [o for o in outcomes if o.started > trial.finished]
    assert after and {o.status for o in after} == {200}


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
def test_redis_stopped_under_load(
    serve: Callable[..., LiveApp],
    database_url: str,
    redis_url: str,
    redis_server: Any,
    fail_open: bool,
) -> None:
    cooldown = 1.0
    env = fault_env(
        database_url,
        redis_url,
        RATE_LIMIT_FAIL_OPEN=str(fail_open).lower(),
        CIRCUIT_BREAKER_COOLDOWN_SECONDS=str(cooldown),
    )
    app = serve(env)
    seen_headers: list[bool] = []

    def read(client: httpx.Client, name: str) -> httpx.Response:
        response = client.get(f"{app.base_url}/api/v1/items", params={"limit": 5})
        seen_headers.append("x-ratelimit-limit" in response.headers)
        return response

    load = Load(read).start()
    try:
        load.wait_until_answered(20)
        stopping = time.monotonic()
        redis_server.stop()
        stopped = time.monotonic()
        time.sleep(2.0)
        live = status_of(f"{app.base_url}/health/live", timeout=1)
    finally:
        restarting = time.monotonic()
        redis_server.start()
    try:
        wait_for(lambda: status_of(f"{app.base_url}/health/ready") == 200, 10, what="ready")
    finally:
        outcomes = load.stop()

    before = [o for o in outcomes if o.finished < stopping]
    # Requests that started after the stop settled (past the 0.3 s socket timeouts).
    during = [o for o in outcomes if stopped + 0.5 <= o.started and o.finished <= restarting]
    assert before
    assert Counter(o.status for o in before) == {200: len(before)}
    assert len(during) >= 20, f"the load must keep running through the outage: {len(during)}"
    assert live == 200
    assert [o for o in outcomes if o.failure or o.status == 500] == []
    slowest = max(o.seconds for o in during)
    assert slowest < 2, f"a dead Redis must not stall requests ({slowest:.2f} s)"
    if fail_open:
        assert {o.status for o in during} == {200}, "fail-open lets every request through"
    else:
        assert {(o.status, o.error_code) for o in during} == {(503, "rate_limiter_unavailable")}
    # Limiting resumes: within a cool-down of Redis's return (the breaker's trial), answers carry
    # the rate-limit headers again.
    assert seen_headers[0] is True
    with httpx.Client() as client:
        wait_for(
            lambda: "x-ratelimit-limit" in client.get(f"{app.base_url}/api/v1/items").headers,
            cooldown + 1,
            what="rate-limit headers again",
        )
    assert circuit_state(app.base_url, "redis") == 0


def test_sigterm_under_load_drains_every_accepted_request(
    serve: Callable[..., LiveApp], database_url: str, redis_url: str
) -> None:
    delay, drain = 1.0, 10.0
    env = fault_env(
        database_url,
        redis_url,
        SHUTDOWN_DELAY_SECONDS=str(delay),
        SHUTDOWN_DRAIN_SECONDS=str(drain),
    )
    # The test launcher adds /test/slow, so requests are in flight when the listener closes.
    app = serve(env, module="tests.support.app_process")

    def is_slow(name: str) -> bool:
        # Each load worker's every fourth request (names are load-<worker>-<i>-<hex>): a fixed
        # mix, so every run has both kinds in flight when the signal comes.
        return int(name.split("-")[2]) % 4 == 3

    def mixed(client: httpx.Client, name: str) -> httpx.Response:
        if is_slow(name):
            return client.get(f"{app.base_url}/test/slow", params={"seconds": 1.5})
        return client.post(f"{app.base_url}/api/v1/items", json={"name": name})

    load = Load(mixed, workers=6, fresh_connections=True).start()
    try:
        load.wait_until_answered(10)
        assert app.process is not None
        signalled = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        exit_code = app.process.wait(delay + drain + 5)
        exited = time.monotonic() - signalled
        time.sleep(0.3)
    finally:
        outcomes = load.stop()

    answered = [o for o in outcomes if o.status is not None]
    not_accepted = [o for o in outcomes if o.failure is not None]
    assert exit_code == 0
    assert exited < delay + drain, f"exited after {exited:.1f}s"
    assert len(answered) >= 20
    assert [o for o in answered if not 200 <= o.status < 300] == [], "an accepted request failed"
    slow_done_after_signal = [
        o for o in answered if is_slow(o.name) and o.finished > signalled + delay
    ]
    assert slow_done_after_signal, "in-flight requests must be drained, not cut off"
    # Refused connections only come once the listener has closed (after the readiness delay).
    assert all(o.failure == "ConnectError" for o in not_accepted), Counter(
        o.failure for o in not_accepted
    )
    assert all(o.started >= signalled + delay - 0.1 for o in not_accepted)


def test_a_locked_table_times_out_promptly_and_leaves_capacity(
    serve: Callable[..., LiveApp], database_url: str, redis_url: str
) -> None:
    statement_ms, pool_timeout = 1000, 1
    env = fault_env(
        database_url,
        redis_url,
        DB_STATEMENT_TIMEOUT_MS=str(statement_ms),
        DB_POOL_TIMEOUT_SECONDS=str(pool_timeout),
    )
    app = serve(env)
    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        item = client.post("/api/v1/items", json={"name": "locked"}).json()

    with psycopg.connect(database_url) as holder:
        # Every query on items now waits for this lock until statement_timeout cancels it.
        holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        load = Load(lambda c, name: c.get(f"{app.base_url}/api/v1/items/{item['id']}"), workers=8)
        load.start()
        try:
            time.sleep(0.5)
            probes = []
            for _ in range(10):
                started = time.monotonic()
                live = status_of(f"{app.base_url}/health/live", timeout=2)
                probes.append((live, time.monotonic() - started))
            # Not touching items: PostgreSQL itself and Redis still answer.
            ready = status_of(f"{app.base_url}/health/ready", timeout=5)
            time.sleep(2.5)
        finally:
            stalled = load.stop()
            holder.rollback()

    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        assert client.get(f"/api/v1/items/{item['id']}").json() == item

    assert len(stalled) >= 8
    assert {(o.status, o.error_code) for o in stalled} == {(503, "dependency_unavailable")}
    bound = statement_ms / 1000 + pool_timeout + 1.0
    assert max(o.seconds for o in stalled) < bound, "timeouts must fire, not hang"
    assert all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 0.5, "liveness must stay fast"
    assert ready == 200
