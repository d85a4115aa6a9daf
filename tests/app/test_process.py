"""`python -m app` as a real process: settings errors, start-up without a database, concurrent
migrations, SIGTERM before serving, a graceful SIGTERM drain and multi-worker metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from app.db import MIGRATION_LOCK_ID
from tests.support.app_process import REPO_ROOT, AppProcess, app_env, run_app
from tests.support.servers import LiveApp, ServerProcess, free_port


def test_production_refuses_unsafe_settings_and_lists_every_problem() -> None:
    env = app_env(
        "mysql://user:hunter2@db.example/app",
        "redis://localhost:6379/0",
        APP_ENV="production",
        ALLOWED_ORIGINS="https://app.example,*",
        DEBUG="true",
        SECRET_KEY="too-short",
    )
    result = run_app([], env, timeout=30)

    assert result.returncode == 2
    problems = {
        line.split(":", 1)[0].strip(" -")
        for line in result.stderr.splitlines()
        if line.startswith("  - ")
    }
    assert problems == {"ALLOWED_ORIGINS", "DEBUG", "SECRET_KEY", "DATABASE_URL"}
    assert "invalid settings (4 problems)" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_missing_settings_are_reported_by_name() -> None:
    env = app_env("postgresql://u:p@127.0.0.1/db", "redis://127.0.0.1/0", PORT="not-a-port")
    del env["DATABASE_URL"], env["REDIS_URL"]
    result = run_app([], env, timeout=30)
    assert result.returncode == 2
    for name in ("DATABASE_URL", "REDIS_URL", "PORT"):
        assert f"  - {name}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_exits_non_zero_after_bounded_retries(redis_url: str) -> None:
    dead = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/app"
    env = app_env(dead, redis_url, STARTUP_DB_MAX_ATTEMPTS="3", STARTUP_DB_WAIT_SECONDS="10")
    started = time.monotonic()
    result = run_app([], env, timeout=60)

    assert result.returncode == 1
    assert time.monotonic() - started < 20
    assert "unreachable after 3 attempt(s)" in result.stderr
    assert "secret" not in result.stderr
    assert result.stdout.count("PostgreSQL not reachable yet") == 2
    assert "start-up complete" not in result.stdout


def test_a_wrong_password_fails_at_once_without_retrying(database_url: str, redis_url: str) -> None:
    wrong = make_url(database_url).set(password="not-the-password")
    env = app_env(wrong.render_as_string(hide_password=False), redis_url)
    result = run_app(["migrate"], env, timeout=60)

    assert result.returncode == 1
    assert "refused the connection: InvalidPasswordError" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout
    assert "PostgreSQL not reachable yet" not in result.stdout, "waiting would not fix it"
    assert "Traceback" not in result.stderr


def test_concurrent_migrations_serialize_on_the_advisory_lock(
    database_url: str, redis_url: str
) -> None:
    env = app_env(database_url, redis_url)
    with psycopg.connect(database_url, autocommit=True) as holder:
        # While another "replica" holds the migration lock, nobody may touch the schema.
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "app", "migrate"],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        time.sleep(2)
        assert [run.poll() for run in runs] == [None, None, None], "migrations must wait"
        table = holder.execute("SELECT to_regclass('public.items')").fetchone()
        assert table == (None,)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))

        outputs = [run.communicate(timeout=60) for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
        versions = holder.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [("0001",)]
        table = holder.execute("SELECT to_regclass('public.items') IS NOT NULL").fetchone()
        assert table == (True,)


def test_migrate_needs_the_database_only_and_logs_no_plugin_setup(database_url: str) -> None:
    # What the migrate init container gets: no Redis URL, no key (production would refuse a
    # short or missing SECRET_KEY for serving).
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "DATABASE_URL": database_url}
    result = run_app(["migrate"], {**env, "APP_ENV": "production"}, timeout=60)

    assert result.returncode == 0, result.stderr
    loggers = [json.loads(line)["logger"] for line in result.stdout.splitlines()]
    assert "app.db" in loggers  # "database schema is at the latest migration"
    assert "alembic.runtime.plugins" not in loggers
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001",)
        ]


def _wait_for_line(process: ServerProcess, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line.get("message", "") for line in process.json_lines()):
            return
        assert process.is_running(), process.fail("exited early")
        time.sleep(0.05)
    raise AssertionError(process.fail(f"no log line with {text!r} within {timeout}s"))


def test_sigterm_while_waiting_for_postgres_exits_at_once(tmp_path: Path, redis_url: str) -> None:
    dead = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/app"
    env = app_env(dead, redis_url, STARTUP_DB_MAX_ATTEMPTS="20", STARTUP_DB_WAIT_SECONDS="60")
    process = ServerProcess(root=tmp_path, name="app")
    process.spawn([sys.executable, "-m", "app"], env=env, cwd=REPO_ROOT)
    _wait_for_line(process, "PostgreSQL not reachable yet")

    signalled = time.monotonic()
    process.stop(timeout=10)

    assert process.process is not None and process.process.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - signalled < 3
    assert any(
        line.get("message") == "received SIGTERM while waiting for PostgreSQL, exiting"
        for line in process.json_lines()
    )
    assert "Traceback" not in process.stderr()


def test_sigterm_while_migrating_exits_at_once_and_applies_nothing(
    tmp_path: Path, database_url: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "DATABASE_URL": database_url}
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        process = ServerProcess(root=tmp_path, name="migrate")
        process.spawn([sys.executable, "-m", "app", "migrate"], env=env, cwd=REPO_ROOT)
        # Waiting for the lock means it is inside the migration's transaction.
        deadline = time.monotonic() + 20
        waiting = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        while holder.execute(waiting).fetchone() != (1,):
            assert time.monotonic() < deadline, process.fail("never waited for the lock")
            time.sleep(0.05)

        signalled = time.monotonic()
        process.stop(timeout=10)

        assert process.process is not None
        assert process.process.returncode == 128 + signal.SIGTERM, process.fail("exit code")
        assert time.monotonic() - signalled < 3
        assert holder.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)
    assert any("while migrating" in line.get("message", "") for line in process.json_lines())


def test_shutdown_lines_carry_no_request_context(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    env = app_env(database_url, redis_url, SHUTDOWN_DELAY_SECONDS="0.5")
    app = LiveApp(tmp_path, env, module="tests.support.app_process").start()
    try:
        busy = threading.Thread(
            target=httpx.get,
            args=(f"{app.base_url}/test/busy",),
            kwargs={"params": {"seconds": 2}, "headers": {"X-Request-ID": "busy-1"}, "timeout": 15},
        )
        busy.start()
        time.sleep(0.7)  # inside the request's time.sleep, which holds the event loop
        assert app.process is not None
        app.process.send_signal(signal.SIGTERM)
        assert app.process.wait(timeout=20) == 0
        busy.join(5)
    finally:
        app.stop()

    lines = app.log_lines()
    assert app.access_line("busy-1")["status"] == 200  # the signal did come mid-request
    shutdown = [
        line
        for line in lines
        if line.get("message", "").startswith(("received SIGTERM", "draining"))
    ]
    assert len(shutdown) == 2, lines
    for line in shutdown:
        assert line["request_id"] is None and "path" not in line and "method" not in line, line


def test_sigterm_fails_readiness_then_drains_in_flight_requests(
    database_url: str, redis_url: str
) -> None:
    env = app_env(
        database_url, redis_url, SHUTDOWN_DELAY_SECONDS="1.5", SHUTDOWN_DRAIN_SECONDS="10"
    )
    server = AppProcess(env, module="tests.support.app_process").start()
    try:
        with server.client() as client:
            assert client.get("/health/ready").status_code == 200
        slow: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: slow.update(
                response=httpx.get(
                    f"{server.base_url}/test/slow",
                    params={"seconds": 3},
                    headers={"X-Request-ID": "slow-1"},
                    timeout=15,
                )
            )
        )
        worker.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        time.sleep(0.2)

        with server.client() as client:
            draining = client.get("/health/ready")
            assert draining.status_code == 503
            assert draining.json()["details"] == {"reason": "draining"}
            assert client.get("/health/live").status_code == 200

        assert server.wait(timeout=20) == 0
        worker.join(5)
        assert slow["response"].status_code == 200
        assert slow["response"].json() == {"slept": 3.0}
    finally:
        server.stop()

    access = [
        line
        for line in server.log_lines()
        if line.get("logger") == "app.access" and line.get("request_id") == "slow-1"
    ]
    assert len(access) == 1
    assert access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 3000
    assert {"timestamp", "level", "message", "method", "path"} <= set(access[0])
    assert any(line.get("message") == "connections closed" for line in server.log_lines())


def test_workers_share_their_metrics(database_url: str, redis_url: str) -> None:
    server = AppProcess(app_env(database_url, redis_url), args=["--workers", "2"]).start()
    try:
        for _ in range(12):
            # A fresh connection per request lets the kernel spread them over both workers.
            assert httpx.get(f"{server.base_url}/api/v1/items", timeout=10).status_code == 200
        wanted = {"method": "GET", "route": "/api/v1/items", "status": "200"}
        for _ in range(4):
            text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
            samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
            count = sum(
                s.value for s in samples if s.name == "http_requests_total" and s.labels == wanted
            )
            assert count == 12, "every scrape must see all workers' requests"
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.stop()
    started = [
        line for line in server.log_lines() if "Started server process" in line.get("message", "")
    ]
    assert len(started) == 2
