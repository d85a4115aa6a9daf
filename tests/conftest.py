"""Shared fixtures: the real PostgreSQL and Redis servers, started once per test session."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.servers import PostgresServer, RedisServer, new_temp_root


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
