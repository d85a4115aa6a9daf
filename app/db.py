"""The PostgreSQL side: the pooled async engine, the start-up wait and migrations under a lock."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from app.settings import Settings

logger = logging.getLogger("app.db")

APP_DIR = Path(__file__).resolve().parent
# Any constant works; every replica must use the same one so they queue on the same lock.
MIGRATION_LOCK_ID = 0x5AFE_6A2D


class DatabaseUnavailableError(RuntimeError):
    """PostgreSQL did not answer within the start-up retry budget."""


def create_engine(settings: Settings) -> AsyncEngine:
    """A pooled engine; creating it opens no connection."""
    connect_args: dict[str, object] = {
        "connect_timeout": settings.db_connect_timeout_seconds,
        "application_name": "safeguard",
    }
    if settings.db_statement_timeout_ms:
        # Server-side timeout: a runaway query is cancelled by PostgreSQL itself, freeing the
        # connection, instead of only abandoning it client-side.
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    engine = create_async_engine(
        settings.sqlalchemy_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        connect_args=connect_args,
    )
    ping_idle_connections(engine, settings.db_pool_ping_idle_seconds)
    return engine


def ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout when it has been idle for more than `idle_seconds`.

    SQLAlchemy's pool_pre_ping pings on every checkout: a round trip and about a third of a
    millisecond of app CPU per request (BENCHMARKS.md). A connection used within the last
    second is skipped, as HikariCP's aliveBypassWindow does; under load that is every checkout.
    A dead connection found by the ping (PostgreSQL restarted, the network dropped an idle
    connection) invalidates the whole pool, so the request gets a fresh connection instead of
    an error. One that died within the window fails its request with a 503 and invalidates the
    pool just the same. 0 pings every checkout.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        # record.info is cleared when a connection is invalidated: a new one is not pinged.
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is None or time.monotonic() - returned_at <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            # The pool retries the checkout with a new connection, after discarding every
            # connection made before now.
            raise InvalidatePoolError(f"pooled connection is dead: {error}") from error


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions for the items API, in autocommit mode.

    Each items operation is one statement (SELECT, INSERT ... RETURNING, DELETE ... RETURNING),
    atomic on its own. Autocommit drops the BEGIN and the COMMIT/ROLLBACK around it: two of the
    four PostgreSQL round trips of a read (pre-ping, BEGIN, SELECT, ROLLBACK). Under PostgreSQL's
    default READ COMMITTED, a list's count and page see separate snapshots with or without a
    transaction. A handler that needs several statements to be atomic needs a transactional
    sessionmaker, not this one. expire_on_commit=False: handlers serialize rows after commit
    without a second round trip.
    """
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(autocommit, expire_on_commit=False)


def describe_url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)


async def wait_for_database(engine: AsyncEngine, settings: Settings) -> None:
    """Retry `SELECT 1` with bounded exponential backoff; raise DatabaseUnavailableError after."""

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "PostgreSQL not reachable yet (attempt %d/%d): %s",
            state.attempt_number,
            settings.startup_db_max_attempts,
            _short(error),
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.startup_db_max_attempts)
        | stop_after_delay(settings.startup_db_wait_seconds),
        wait=wait_exponential(multiplier=0.2, max=5.0) + wait_random(0, 0.2),
        retry=retry_if_exception_type((OperationalError, InterfaceError, OSError)),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
    except (OperationalError, InterfaceError, OSError) as exc:
        attempts = retrying.statistics.get("attempt_number", "?")
        raise DatabaseUnavailableError(
            f"PostgreSQL at {describe_url(engine)} is unreachable after {attempts} attempt(s) "
            f"within {settings.startup_db_wait_seconds:g}s: {_short(exc)}"
        ) from exc


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


async def migrate(engine: AsyncEngine) -> None:
    """Apply pending migrations; concurrent callers wait on the advisory lock, then find nothing."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to_head)
    logger.info("database schema is at the latest migration")


def _short(error: BaseException | None, limit: int = 300) -> str:
    if error is None:
        return "unknown error"
    original = getattr(error, "orig", None) or error
    text_ = " ".join(str(original).split()) or type(original).__name__
    return f"{type(original).__name__}: {text_}"[:limit]
