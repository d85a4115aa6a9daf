"""Probe and health endpoints. Their paths are the contract the platform's probes rely on.

- /health/live: the process answers; touches no dependency (a DB outage must not restart pods).
- /health/ready: PostgreSQL and Redis both answer within HEALTH_CHECK_TIMEOUT_SECONDS, and the
  app is started and not draining.
- /health/startup: start-up (DB wait, migrations, pools) has finished.
- /health: a status document for humans and dashboards.

Outside development a failed check says only that it failed: the error text (host names, ports,
driver messages) goes to the log, never into a body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.db import describe_error
from app.errors import AppError, error_responses
from app.runtime import AppRuntime

LIVE_PATH = "/health/live"
READY_PATH = "/health/ready"
STARTUP_PATH = "/health/startup"
HEALTH_PATH = "/health"

logger = logging.getLogger("app.health")


class CheckResult(BaseModel):
    status: Literal["up", "down"]
    latency_ms: float | None
    error: str | None = None
    """Why the check failed; development only (null elsewhere, the log has it)."""


class HealthReport(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    uptime_seconds: float
    version: str
    checks: dict[str, CheckResult]


async def _timed(name: str, runtime: AppRuntime, probe: Any) -> CheckResult:
    settings = runtime.settings
    start = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(probe(), settings.health_check_timeout_seconds)
    except TimeoutError:
        error = f"no answer within {settings.health_check_timeout_seconds:g}s"
    except Exception as exc:
        error = describe_error(exc)
    runtime.metrics.dependency_up.labels(name).set(0 if error else 1)
    if error is None:
        latency = round((time.perf_counter() - start) * 1000, 2)
        return CheckResult(status="up", latency_ms=latency)
    logger.warning("health check %s failed: %s", name, error, extra={"dependency": name})
    shown = error if settings.app_env == "development" else None
    return CheckResult(status="down", latency_ms=None, error=shown)


async def run_checks(runtime: AppRuntime) -> dict[str, CheckResult]:
    resources = runtime.resources
    if resources is None:
        not_started = CheckResult(status="down", latency_ms=None, error="app not started")
        return {"postgres": not_started, "redis": not_started}

    async def postgres() -> None:
        # The pool itself, not Database.connection(): the check reports the driver's own error
        # and does not queue behind requests waiting for a connection under load.
        async with resources.db.pool.acquire() as connection:
            await connection.fetchval("SELECT 1")

    async def redis() -> None:
        await resources.redis.ping()

    pg, rd = await asyncio.gather(
        _timed("postgres", runtime, postgres), _timed("redis", runtime, redis)
    )
    return {"postgres": pg, "redis": rd}


def _runtime(request: Request) -> AppRuntime:
    return request.app.state.runtime


async def live() -> dict[str, str]:
    return {"status": "alive"}


async def ready(request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    if runtime.draining:
        raise AppError(503, "not_ready", "Shutting down", {"reason": "draining"})
    if not runtime.started:
        raise AppError(503, "not_ready", "Start-up has not finished", {"reason": "starting"})
    checks = await run_checks(runtime)
    failed = sorted(name for name, check in checks.items() if check.status != "up")
    if failed:
        raise AppError(
            503,
            "not_ready",
            f"Dependency check failed: {', '.join(failed)}",
            {"failed": failed, "checks": {name: checks[name].model_dump() for name in failed}},
        )
    return {"status": "ready", "checks": {name: c.model_dump() for name, c in checks.items()}}


async def startup(request: Request) -> dict[str, str]:
    if not _runtime(request).started:
        raise AppError(503, "starting", "Start-up has not finished", {"reason": "starting"})
    return {"status": "started"}


async def health(request: Request) -> JSONResponse:
    runtime = _runtime(request)
    checks = await run_checks(runtime)
    # PostgreSQL holds the data, so without it the app is unhealthy; Redis only backs rate
    # limiting (which fails open by default), so without it the app is degraded.
    if checks["postgres"].status != "up":
        status = "unhealthy"
    elif checks["redis"].status != "up":
        status = "degraded"
    else:
        status = "healthy"
    report = HealthReport(
        status=status,
        uptime_seconds=round(time.monotonic() - runtime.started_monotonic, 3),
        version=runtime.settings.version,
        checks=checks,
    )
    return JSONResponse(report.model_dump())


def register(app: FastAPI) -> None:
    # Routes go straight onto the app (not an included APIRouter) so `app.routes` lists every
    # probe path: the platform's tests read the probe contract from there.
    not_ready = error_responses(503)
    not_ready[503]["description"] = "Not ready: starting, draining or a dependency is down"
    app.add_api_route(LIVE_PATH, live, methods=["GET"], tags=["health"])
    app.add_api_route(READY_PATH, ready, methods=["GET"], tags=["health"], responses=not_ready)
    app.add_api_route(
        STARTUP_PATH, startup, methods=["GET"], tags=["health"], responses=error_responses(503)
    )
    app.add_api_route(
        HEALTH_PATH, health, methods=["GET"], tags=["health"], response_model=HealthReport
    )
