"""Per-app runtime state and the lifespan that connects to PostgreSQL and Redis.

`create_app` builds an `AppRuntime` without touching the network; the lifespan fills in
`resources` (the PostgreSQL pool, Redis, rate limiter) and flips `started`. The server flips
`draining` on SIGTERM so /health/ready fails before the listener closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.breaker import CircuitBreaker, CircuitState
from app.db import Database, migrate, open_database, wait_for_database
from app.db import is_outage as is_database_outage
from app.metrics import Metrics, mark_process_dead
from app.ratelimit import RateLimiter
from app.settings import Settings

if TYPE_CHECKING:
    from app.telemetry import Tracing

logger = logging.getLogger("app.runtime")


@dataclass
class Resources:
    db: Database
    redis: Redis
    redis_breaker: CircuitBreaker
    """Wraps every Redis call of a request (rate limiting); the health checks go around it."""
    limiter: RateLimiter


@dataclass
class AppRuntime:
    settings: Settings
    metrics: Metrics
    tracing: Tracing | None = None
    """Set when OTEL_* turn tracing on (app.telemetry)."""
    resources: Resources | None = None
    started: bool = False
    draining: bool = False
    started_monotonic: float = field(default_factory=time.monotonic)

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            logger.info("draining: readiness now fails, in-flight requests may finish")


def create_redis(settings: Settings) -> Redis:
    """A Redis client that fails fast: short socket timeouts and one immediate retry.

    redis-py's default retries with backoff would stall requests for seconds on a dead Redis;
    the single retry only covers a pooled connection that went stale while Redis restarted.
    """
    pool = ConnectionPool.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)


def is_redis_outage(error: BaseException) -> bool:
    """Redis unreachable or not answering in time; not a command it refused."""
    return isinstance(error, RedisConnectionError | RedisTimeoutError | OSError)


def create_breaker(runtime: AppRuntime, dependency: str) -> CircuitBreaker:
    settings = runtime.settings
    outage = {"postgres": is_database_outage, "redis": is_redis_outage}[dependency]
    runtime.metrics.observe_circuit(dependency, CircuitState.CLOSED)
    return CircuitBreaker(
        dependency,
        failures=settings.circuit_breaker_failures,
        cooldown_seconds=settings.circuit_breaker_cooldown_seconds,
        is_outage=outage,
        on_change=runtime.metrics.observe_circuit,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime: AppRuntime = app.state.runtime
    settings = runtime.settings
    if runtime.tracing is not None:
        runtime.tracing.start()
    redis = create_redis(settings)
    db: Database | None = None
    try:
        await wait_for_database(settings)
        if settings.migrate_on_startup:
            await migrate(settings)
        db = await open_database(settings, create_breaker(runtime, "postgres"))
        try:
            await asyncio.wait_for(redis.ping(), settings.health_check_timeout_seconds)
        except Exception as exc:
            # Redis backs only rate limiting, so the app starts degraded rather than not at all.
            logger.warning("Redis unreachable at start-up, starting degraded: %r", exc)
        runtime.resources = Resources(
            db=db,
            redis=redis,
            redis_breaker=create_breaker(runtime, "redis"),
            limiter=RateLimiter(settings, redis),
        )
        runtime.metrics.observe_pool(db)
        runtime.started_monotonic = time.monotonic()
        runtime.started = True
        logger.info("start-up complete", extra={"version": settings.version})
        yield
    finally:
        runtime.started = False
        runtime.resources = None
        await redis.aclose(close_connection_pool=True)
        if db is not None:
            await db.close()
        mark_process_dead()
        logger.info("connections closed")
        if runtime.tracing is not None:
            runtime.tracing.stop()
