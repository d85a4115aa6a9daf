"""The one error envelope every error response uses, and the handlers that produce it.

`{"error_id", "error_code", "message", "timestamp", "details"}`: error_id is unique per error and
is logged next to the cause (with the traceback for 500s), so an operator can find it from a
client's report while the response itself never carries internals.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.db import DatabaseUnavailableError

logger = logging.getLogger("app.errors")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    503: "service_unavailable",
}
_MAX_LOC_PART = 100


class ErrorEnvelope(BaseModel):
    """The body of every error response (documented in the OpenAPI schema)."""

    error_id: str
    error_code: str
    message: str
    timestamp: str
    details: Any = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` documenting each status with the envelope, so clients and schema
    checkers (schemathesis) know what an error looks like."""
    return {
        status: {"model": ErrorEnvelope, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


class AppError(Exception):
    """An error the app raises on purpose; becomes an envelope with its status and code."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message
        self.details = details
        self.headers = headers


def new_error_id() -> str:
    return uuid.uuid4().hex


def error_response(
    status_code: int,
    error_code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
    error_id: str | None = None,
) -> JSONResponse:
    body = {
        "error_id": error_id or new_error_id(),
        "error_code": error_code,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(),
        "details": details,
    }
    return JSONResponse(body, status_code=status_code, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # pydantic's errors carry the offending input; a client sent it, so it must not come back
    # (it may be megabytes). Locations can hold client-chosen keys, hence the truncation.
    return [
        {
            "loc": [str(part)[:_MAX_LOC_PART] for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _CODES.get(status, f"http_{status}")
    try:
        default_message = HTTPStatus(status).phrase
    except ValueError:
        default_message = "Error"
    message = exc.detail if isinstance(exc.detail, str) else default_message
    headers = exc.headers
    if status == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(status, code, message, headers=headers)


def _allowed_methods(request: Request) -> str:
    # Each method of a path is its own route, and Starlette's 405 lists only the first route
    # whose path matched; Allow must list every method the path supports.
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        422, "validation_error", "Request validation failed", _validation_details(exc)
    )


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.error_code, exc.message, exc.details, exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Connection refused, dropped connections, pool exhaustion and statement timeouts all mean
    # "try again later", not "the server is broken": 503 lets clients and load balancers retry.
    assert isinstance(exc, DatabaseUnavailableError)
    error_id = new_error_id()
    # With the breaker open there is no driver error to show, only the breaker's refusal.
    logger.warning(
        "database unavailable during request: %s",
        exc,
        exc_info=None if exc.circuit_open else exc,
        extra={"error_id": error_id},
    )
    # circuit_open: refused by the breaker without trying PostgreSQL.
    details = {"dependency": "postgres", "circuit_open": exc.circuit_open}
    return error_response(
        503,
        "dependency_unavailable",
        "A dependency is unavailable, retry later",
        details,
        headers={"Retry-After": "1"},
        error_id=error_id,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Envelopes for everything the routing layer raises; 500s come from the request middleware."""
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
