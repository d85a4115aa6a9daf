"""Prometheus metrics: the names here are a contract with the alert rules and dashboards.

Each app instance gets its own registry so several apps (tests) can live in one process. With
`--workers N`, `python -m app` sets PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every
worker's files through prometheus-client's MultiProcessCollector.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from app.db import Database

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def method_label(method: str) -> str:
    # Clients choose the method string; anything unknown is folded so cardinality stays bounded.
    return method if method in KNOWN_METHODS else "OTHER"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The app's metric objects and their exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests_total = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration in seconds by method and route template.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.requests_in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being served right now.",
            ["method"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_pool_checked_out = Gauge(
            "db_pool_checked_out_connections",
            "Database connections checked out of the pool.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_pool_size = Gauge(
            "db_pool_size",
            "Configured size of the database connection pool.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.dependency_up = Gauge(
            "app_dependency_up",
            "1 when the dependency answered the last health check, else 0.",
            ["dependency"],
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        # livemax: with several workers, the worst breaker of any live worker.
        self.circuit_state = Gauge(
            "app_circuit_state",
            "State of the dependency's circuit breaker: 0 closed, 1 half-open (a trial call in "
            "flight), 2 open (calls fail at once).",
            ["dependency"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.rate_limit_rejections = Counter(
            "rate_limit_rejections_total",
            "Requests rejected with 429 by the rate limiter.",
            registry=registry,
        )

    def observe_circuit(self, dependency: str, state: int) -> None:
        self.circuit_state.labels(dependency).set(state)

    def observe_pool(self, db: Database | None) -> None:
        """Refresh the pool gauges; called at scrape time and after each request."""
        if db is None:
            return
        self.db_pool_size.set(db.pool.get_max_size())
        self.db_pool_checked_out.set(db.in_use())

    def exposition(self) -> tuple[bytes, str]:
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    """Drop this worker's live gauges from the multiprocess files when it exits."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())
