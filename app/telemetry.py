"""OpenTelemetry tracing of requests, PostgreSQL (asyncpg) and Redis, off unless the standard
OTEL_* settings turn it on (`Settings.tracing_enabled`).

Requests are traced by FastAPI itself (its native telemetry, FastAPI 0.165: the
contrib opentelemetry-instrumentation-fastapi would be a second copy of the same), given our
tracer provider; its span encloses the whole middleware stack, so the request middleware's
access line and error logs run inside it and carry its `trace_id`. asyncpg and Redis are
instrumented by the contrib instrumentors for the lifespan of the app (they patch the libraries
process-wide, and are undone at shutdown).

Only `create_app` imports this module, and only when tracing is on: with it off, neither the
SDK, nor an exporter, nor an instrumentation is loaded (tests/app/test_tracing.py checks). The
OpenTelemetry API is loaded either way: FastAPI imports it, and with no provider given and
none configured its telemetry does nothing.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from app import log_config

if TYPE_CHECKING:
    from app.settings import Settings

# Probes and scrapes every few seconds would drown the traces that matter.
UNTRACED_PREFIXES = ("/health", "/metrics")


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(UNTRACED_PREFIXES)


def sampler(settings: Settings) -> Sampler:
    """OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, as the SDK reads them."""
    name = settings.otel_traces_sampler
    ratio = settings.otel_traces_sampler_arg
    root: Sampler = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
    }[name.removeprefix("parentbased_")]
    return ParentBased(root) if name.startswith("parentbased_") else root


def _exporter(settings: Settings) -> SpanExporter:
    if settings.otel_traces_exporter == "console":
        return ConsoleSpanExporter()
    # Imported here: it brings requests and protobuf, which the console exporter needs not.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class Tracing:
    """The app's tracer provider and instrumentation; `exporter` replaces the one the settings
    name (tests give the SDK's InMemorySpanExporter)."""

    def __init__(self, settings: Settings, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create(
            {"service.name": settings.otel_service_name, "service.version": settings.version}
        )
        self.provider = TracerProvider(resource=resource, sampler=sampler(settings))
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            self.provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))

    def fastapi_telemetry(self) -> TelemetryConfig:
        """FastAPI's telemetry: request spans on our provider. Its metrics are Prometheus's
        job here (app.metrics) and the JSON log is ours; its operation spans (dependencies,
        endpoint, serialization) would triple the spans of every request."""
        return {
            "tracing": True,
            "metrics": False,
            "logs": False,
            "auto_configure": False,
            "tracer_provider": self.provider,
            "operation_spans": False,
            "exclude": _untraced,
        }

    def start(self) -> None:
        AsyncPGInstrumentor().instrument(tracer_provider=self.provider)
        RedisInstrumentor().instrument(tracer_provider=self.provider)
        log_config.trace_id_source = current_trace_id

    def stop(self) -> None:
        log_config.trace_id_source = None
        AsyncPGInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        # Sends what the batch processor still holds.
        self.provider.shutdown()
