"""The outermost request middleware: request id, access log, HTTP metrics, security headers
and the 500 envelope.

It sits outside everything else, so every response (CORS preflights, 429s, 500s) gets the
X-Request-ID and security headers and is counted. Unhandled exceptions are turned into the
envelope here instead of in Starlette's ServerErrorMiddleware, which sits further out and would
answer without those headers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response, new_error_id
from app.log_config import RequestContext, request_context
from app.metrics import UNMATCHED_ROUTE, method_label
from app.security import DOCS_PATHS, security_headers

if TYPE_CHECKING:
    from app.runtime import AppRuntime

access_logger = logging.getLogger("app.access")
error_logger = logging.getLogger("app.errors")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_CLIENT_LENGTH = 64


def accept_request_id(candidate: str | None) -> str:
    """The client's id if it is short and log-safe, else a fresh one (no log injection)."""
    if candidate is not None and _SAFE_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


def client_address(scope: Scope) -> str | None:
    """The client address the app uses (the proxy's X-Forwarded-For once uvicorn believed it),
    cut to a length no address exceeds so a trusted proxy's odd value cannot bloat the log."""
    client = scope.get("client")
    return client[0][:_MAX_CLIENT_LENGTH] if client else None


def route_template(scope: Scope) -> str:
    """The matched route's path template, so ids in URLs never become label values."""
    route = scope.get("route")
    if route is None:
        # Requests answered before routing (a 429, a CORS preflight) still name their route.
        # A full match wins; a path match with another method (answered 405) is next best.
        app = scope.get("app")
        partial = None
        for candidate in getattr(getattr(app, "router", None), "routes", ()):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once a streamed body passes the limit; FastAPI re-raises
    HTTPExceptions from body parsing unchanged, so it becomes the 413 envelope."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than {limit} bytes")


class RequestSizeLimitMiddleware:
    """Caps request headers at MAX_HEADER_BYTES (431) and bodies at MAX_BODY_BYTES (413).

    uvicorn's httptools parser accepts headers of any size, and Starlette's own body limit
    answers in plain text, not with the envelope. The edge proxy has its own, stricter limits;
    these hold for clients that reach the app directly.
    """

    def __init__(self, app: ASGIApp, max_header_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            response = error_response(
                431,
                "headers_too_large",
                f"Request headers are larger than {self.max_header_bytes} bytes",
                {"limit": self.max_header_bytes},
            )
            await response(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            response = error_response(
                413,
                "payload_too_large",
                f"Request body is larger than {self.max_body_bytes} bytes",
                {"limit": self.max_body_bytes},
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        await self.app(scope, limited_receive, send)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, runtime: AppRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self.headers = security_headers(runtime.settings)
        self.docs_headers = security_headers(runtime.settings, docs=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        method = scope["method"]
        path = scope["path"]
        token = request_context.set(RequestContext(request_id, method, path))
        extra_headers = self.docs_headers if path in DOCS_PATHS else self.headers
        metrics = self.runtime.metrics
        label = method_label(method)
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in extra_headers:
                    headers[name.decode()] = value.decode()
            await send(message)

        metrics.requests_in_progress.labels(label).inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_id = new_error_id()
            error_logger.exception("unhandled error", extra={"error_id": error_id})
            if response_started:
                # Too late for an envelope; the server closes the connection.
                raise
            response = error_response(
                500, "internal_error", "Internal server error", error_id=error_id
            )
            await response(scope, receive, send_with_headers)
        finally:
            duration = time.perf_counter() - start
            route = route_template(scope)
            metrics.requests_in_progress.labels(label).dec()
            metrics.requests_total.labels(label, route, str(status)).inc()
            metrics.request_duration.labels(label, route).observe(duration)
            resources = self.runtime.resources
            metrics.observe_pool(resources.db if resources else None)
            access_logger.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "route": route,
                    "client": client_address(scope),
                },
            )
            request_context.reset(token)
