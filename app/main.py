"""The application factory. Building the app opens no connection: that happens in the lifespan.

For route inspection without an environment, pass settings explicitly, e.g.
`create_app(Settings(database_url="postgresql://u:p@localhost/db", redis_url="redis://localhost"))`.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
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

METRICS_PATH = "/metrics"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = AppRuntime(settings=settings, metrics=Metrics())
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
