"""Structured JSON logging: one object per line, with the current request's id on every line.

The request context lives in a contextvar set by the request middleware; a logging filter copies
it onto each record, so any logger (ours, SQLAlchemy's, uvicorn's) carries it during a request.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pythonjsonlogger.json import JsonFormatter


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    method: str
    path: str


request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)
trace_id_source: Callable[[], str | None] | None = None
"""Set by app.telemetry while tracing is on: the current span's trace id, for every line."""


class RequestContextFilter(logging.Filter):
    """Adds request_id (None outside a request), method and path to every record, and
    trace_id (None outside a span) while tracing is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn attaches an ANSI-coloured copy of some messages; useless in JSON.
        record.__dict__.pop("color_message", None)
        if trace_id_source is not None and not hasattr(record, "trace_id"):
            record.trace_id = trace_id_source()
        context = request_context.get()
        if not hasattr(record, "request_id"):
            record.request_id = context.request_id if context else None
        if context is not None:
            if not hasattr(record, "method"):
                record.method = context.method
            if not hasattr(record, "path"):
                record.path = context.path
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
    )


def configure_logging(level: str, debug: bool = False) -> None:
    logging.config.dictConfig(build_log_config(level, debug))


def build_log_config(level: str, debug: bool = False) -> dict[str, Any]:
    """A logging.config.dictConfig document; uvicorn applies it in the parent and every worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": RequestContextFilter}},
        "formatters": {"json": {"()": json_formatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["request_context"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            # uvicorn's loggers keep no handlers of their own so their lines come out as JSON too;
            # its access log is replaced by ours, which knows the route and the request id.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            "sqlalchemy.engine": {"level": "INFO" if debug else "WARNING"},
            # Seven lines at every start about autogenerate plugins, which only authoring uses.
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }
