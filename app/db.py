"""The PostgreSQL side: the asyncpg pool the API queries through, the start-up wait, and
migrations under a lock.

The API's statements run on asyncpg directly. The same read through SQLAlchemy's async ORM cost
1.5 ms of app CPU against 0.4 ms on asyncpg, and was the largest share of the app's time per
request (BENCHMARKS.md). SQLAlchemy stays for what it does here: app/models.py describes the
schema and Alembic migrates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from app.breaker import CircuitBreaker, CircuitOpenError
from app.settings import DatabaseSettings, Settings

logger = logging.getLogger("app.db")

APP_DIR = Path(__file__).resolve().parent
# Any constant works; every replica must use the same one so they queue on the same lock.
MIGRATION_LOCK_ID = 0x5AFE_6A2D

# "PostgreSQL cannot answer now": worth a retry, a 503, a failed readiness check.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable; TimeoutError (connect, pool acquire) is one too
    asyncpg.InterfaceError,  # a connection closed under the pool
    # A connection caught between PostgreSQL's goodbye (FATAL: terminating connection) and its
    # socket closing: "cannot switch to state ...; another operation is in progress".
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,  # class 08: connecting failed, or the connection was lost
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, out of memory
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up, statement_timeout
)


class DatabaseUnavailableError(RuntimeError):
    """PostgreSQL could not answer: at start-up within the retry budget, or for one request
    (`circuit_open`: the breaker refused the request without trying)."""

    def __init__(self, message: str, circuit_open: bool = False) -> None:
        super().__init__(message)
        self.circuit_open = circuit_open


def is_outage(error: BaseException) -> bool:
    """What opens the breaker: PostgreSQL unreachable or not answering (a full pool included),
    not a statement it cancelled at statement_timeout, which a slow query earns on a healthy
    server."""
    return isinstance(error, DatabaseUnavailableError) and not isinstance(
        error.__cause__, asyncpg.QueryCanceledError
    )


class Database:
    """The API's connection pool.

    `connection()` lends a pooled connection for one or more statements and raises
    DatabaseUnavailableError, chained to the driver's error, for anything in UNAVAILABLE_ERRORS
    and when no connection is free within DB_POOL_TIMEOUT_SECONDS. A connection PostgreSQL
    closed (a restart, an idle timeout) is noticed by asyncpg when the server's goodbye arrives,
    and the pool replaces it at the next checkout; one lost without a word fails its request
    with a 503 and is replaced just the same.

    The breaker (app/breaker.py) wraps each lending: once PostgreSQL failed
    CIRCUIT_BREAKER_FAILURES times in a row, requests are refused at once, without waiting for
    a connection, until a trial after the cool-down succeeds.

    Requests wait for a connection in arrival order. asyncpg's pool alone is not fair: its
    asyncio.Queue lets a newcomer take a connection just released to a waiter, which queues
    again at the back, so under load a few requests waited over a second while the median
    took 20 ms (BENCHMARKS.md). A FIFO semaphore with one turn per connection goes first.
    """

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float, breaker: CircuitBreaker) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout
        self.breaker = breaker
        self._turns = asyncio.Semaphore(pool.get_max_size())

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.breaker.guard(), self._lend() as connection:
                yield connection
        except CircuitOpenError as error:
            raise DatabaseUnavailableError(str(error), circuit_open=True) from None

    @asynccontextmanager
    async def _lend(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            if self._turns.locked():
                async with asyncio.timeout(self.acquire_timeout):
                    await self._turns.acquire()
            else:
                await self._turns.acquire()  # returns at once: no timer needed
        except TimeoutError:
            raise DatabaseUnavailableError(
                f"no pooled connection free within {self.acquire_timeout:g}s"
            ) from None
        try:
            async with self.pool.acquire() as connection:
                yield connection
        except UNAVAILABLE_ERRORS as error:
            raise DatabaseUnavailableError(describe_error(error)) from error
        finally:
            self._turns.release()

    def in_use(self) -> int:
        return self.pool.get_size() - self.pool.get_idle_size()

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool once its connections are back; asyncpg cuts them if that takes longer
        than `timeout` (close() cancelled terminates the pool)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pool.close(), timeout)


def _connect_options(settings: DatabaseSettings) -> dict[str, Any]:
    server_settings = {"application_name": "safeguard"}
    if settings.db_statement_timeout_ms:
        # Server-side timeout: a runaway query is cancelled by PostgreSQL itself, freeing the
        # connection, instead of only abandoning it client-side.
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return {
        "dsn": settings.postgres_dsn,
        "timeout": settings.db_connect_timeout_seconds,
        "server_settings": server_settings,
    }


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release, in place of asyncpg's `RESET ALL` and friends.

    The API's statements change no session state (no SET, LISTEN, advisory lock or cursor), so
    that query would be one more round trip per request for nothing. asyncpg still rolls back a
    transaction left open before calling this.
    """


async def open_database(settings: Settings, breaker: CircuitBreaker) -> Database:
    """A fixed pool of DB_POOL_SIZE connections, all opened now."""
    pool = await asyncpg.create_pool(
        min_size=settings.db_pool_size,
        max_size=settings.db_pool_size,
        reset=_keep_session,
        **_connect_options(settings),
    )
    return Database(pool, settings.db_pool_timeout_seconds, breaker)


async def wait_for_database(settings: DatabaseSettings) -> None:
    """Retry `SELECT 1` with bounded exponential backoff; raise DatabaseUnavailableError after.

    Only errors in UNAVAILABLE_ERRORS are retried. A wrong password or a missing database
    fails at once: waiting would not fix it.
    """

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "PostgreSQL not reachable yet (attempt %d/%d): %s",
            state.attempt_number,
            settings.startup_db_max_attempts,
            describe_error(error),
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.startup_db_max_attempts)
        | stop_after_delay(settings.startup_db_wait_seconds),
        wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.2),
        retry=retry_if_exception_type(UNAVAILABLE_ERRORS),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                connection = await asyncpg.connect(**_connect_options(settings))
                try:
                    await connection.fetchval("SELECT 1")
                finally:
                    await connection.close()
    except UNAVAILABLE_ERRORS as error:
        attempts = retrying.statistics.get("attempt_number", "?")
        raise DatabaseUnavailableError(
            f"PostgreSQL at {settings.postgres_location} is unreachable after {attempts} "
            f"attempt(s) within {settings.startup_db_wait_seconds:g}s: {describe_error(error)}"
        ) from error
    except asyncpg.PostgresError as error:
        raise DatabaseUnavailableError(
            f"PostgreSQL at {settings.postgres_location} refused the connection: "
            f"{describe_error(error)}"
        ) from error


def migration_engine(settings: DatabaseSettings) -> AsyncEngine:
    """A one-connection SQLAlchemy engine for Alembic, connecting exactly as the pool does."""
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=partial(asyncpg.connect, **_connect_options(settings)),
        poolclass=NullPool,
    )


def alembic_config() -> Config:
    config = Config(str(APP_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(APP_DIR / "migrations"))
    return config


def lock_for_migrations(connection: Connection) -> None:
    """Serialize migrations across replicas; called by migrations/env.py inside its transaction.

    A transaction-level lock is released by COMMIT or ROLLBACK, and by PostgreSQL when a replica
    dies mid-migration, so there is no unlock to forget. Migrations can legitimately run longer
    than the request statement_timeout, which is lifted for this transaction only.
    """
    connection.execute(text("SET LOCAL statement_timeout = 0"))
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(settings: DatabaseSettings) -> None:
    """Apply pending migrations; concurrent callers wait on the advisory lock, then find nothing."""
    engine = migration_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to_head)
    finally:
        await engine.dispose()
    logger.info("database schema is at the latest migration")


def describe_error(error: BaseException | None, limit: int = 300) -> str:
    if error is None:
        return "unknown error"
    text_ = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text_}"[:limit]
