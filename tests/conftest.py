"""Shared fixtures: the real PostgreSQL and Redis servers, started once per test session; the app
served as a process and nginx in front of it for the edge and monitoring tests."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.nginx import render_nginx_conf
from tests.support.app_process import APP_REDIS_DB, flush_redis
from tests.support.servers import (
    LIVE_APP_ORIGINS,
    LIVE_APP_REDIS_DB,
    LiveApp,
    NginxServer,
    PostgresServer,
    RedisServer,
    free_port,
    new_temp_root,
    nginx_test_conf,
)

# Helpers that assert on the tests' behalf: pytest rewrites their asserts as it does the tests',
# so that a failure shows the values compared.
pytest.register_assert_rewrite("tests.support.diagnostics", "tests.support.envelope")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    root = new_temp_root("safeguard-pg-")
    server = PostgresServer(root=root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    root = new_temp_root("safeguard-redis-")
    server = RedisServer(root=root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        if not postgres_server.is_running():
            postgres_server.start()
        postgres_server.drop_database(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The app tests' Redis database, flushed for one test."""
    url = redis_server.url(APP_REDIS_DB)
    flush_redis(url)
    return url


@pytest.fixture(scope="session")
def live_app(postgres_server: PostgresServer, redis_server: RedisServer) -> Iterator[LiveApp]:
    """`python -m app` as deployed (APP_ENV=production) on a free loopback port, with its own
    database, shared by the nginx, Prometheus and metrics-contract tests; its JSON log goes to
    a file the tests read while it runs."""
    from tests.support.app_process import app_env

    name = f"edge_{uuid.uuid4().hex[:12]}"
    database = postgres_server.create_database(name)
    root = new_temp_root("safeguard-app-")
    env = app_env(
        database,
        redis_server.url(LIVE_APP_REDIS_DB),
        APP_ENV="production",
        ALLOWED_ORIGINS=",".join(LIVE_APP_ORIGINS),
        # The edge's own limit is under test; the app's must not answer first.
        RATE_LIMIT="100000/minute",
    )
    app = LiveApp(root=root, env=env)
    try:
        app.start()
        yield app
    finally:
        app.stop()
        postgres_server.drop_database(name)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def start_nginx() -> Iterator[Callable[..., NginxServer]]:
    """Starts nginx on the config `render_nginx_conf` makes of NginxConf(**fields), with the
    ports and writable paths pointed at loopback and a temp dir; stops them all at the end of the
    test module."""
    started: list[tuple[NginxServer, Path]] = []

    def start(**fields: Any) -> NginxServer:
        root = new_temp_root("safeguard-nginx-")
        server = NginxServer(root=root, config="", port=free_port())
        started.append((server, root))
        server.config = render_nginx_conf(nginx_test_conf(root, server.port, **fields))
        return server.start()

    try:
        yield start
    finally:
        for server, root in started:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
