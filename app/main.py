"""The application factory. Building the app opens no connection: that happens in the lifespan.

For route inspection without an environment, pass settings explicitly, e.g.
`create_app(Settings(database_url="postgresql://u:p@localhost/db", redis_url="redis://localhost"))`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware

from app import health
from app.api import items
from app.errors import install_error_handlers
from app.http_cache import ConditionalGetMiddleware
from app.metrics import Metrics
from app.middleware import RequestContextMiddleware, RequestSizeLimitMiddleware
from app.ratelimit import RateLimitMiddleware
from app.runtime import AppRuntime, lifespan
from app.security import AllowlistCORSMiddleware, cors_options
from app.settings import Settings, get_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

METRICS_PATH = "/metrics"


TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
}
"""FastAPI's own telemetry with tracing off: nothing, even if something else in the process set
a global provider or FASTAPI_OTEL_AUTO_CONFIGURE."""


def telemetry_config(runtime: AppRuntime) -> TelemetryConfig:
    return runtime.tracing.fastapi_telemetry() if runtime.tracing else TELEMETRY_OFF


def create_app(
    settings: Settings | None = None, span_exporter: SpanExporter | None = None
) -> FastAPI:
    """The app; `span_exporter`, with tracing on, replaces the exporter the settings name."""
    settings = settings or get_settings()
    runtime = AppRuntime(settings=settings, metrics=Metrics())
    if settings.tracing_enabled:
        # Imported only now: with tracing off, the SDK, the exporters and the
        # instrumentations are never loaded.
        from app.telemetry import Tracing

        runtime.tracing = Tracing(settings, span_exporter)
    docs = not settings.is_production
    # First in the list is outermost: the request middleware must see every response,
    # CORS must decorate 413/431/429s, and size limits and rate limiting run before routing and
    # auth.
    middleware = [
        Middleware(RequestContextMiddleware, runtime=runtime),
        Middleware(AllowlistCORSMiddleware, **cors_options(settings)),
        Middleware(
            RequestSizeLimitMiddleware,
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
        ),
        Middleware(RateLimitMiddleware, runtime=runtime),
        # Innermost: it sees the route's own answer, and a 304 still counts against the limit.
        Middleware(ConditionalGetMiddleware, max_age_seconds=settings.http_cache_max_age_seconds),
    ]
    app = FastAPI(
        title="safeguard",
        version=settings.version,
        debug=False,
        lifespan=lifespan,
        middleware=middleware,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json",
        telemetry=telemetry_config(runtime),
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    health.register(app)
    items.register(app)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        resources = runtime.resources
        runtime.metrics.observe_pool(resources.db if resources else None)
        body, content_type = runtime.metrics.exposition()
        return Response(body, media_type=content_type)

    return app
