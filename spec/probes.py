"""Health checks in the service description: what a probe runs, and its timing.

The Kubernetes back end turns them into probes, the Docker back end into a health check run
inside the container.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class HttpGet:
    """An HTTP GET against the container itself; any 2xx or 3xx answer is healthy."""

    path: str
    port: int


@dataclass(frozen=True, kw_only=True)
class Exec:
    """A command run inside the container; exit code 0 is healthy."""

    command: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Probe:
    """One health check and its timing."""

    check: HttpGet | Exec
    period_seconds: int = 10
    timeout_seconds: int = 3
    failure_threshold: int = 3


@dataclass(frozen=True, kw_only=True)
class Probes:
    """Liveness restarts a stuck container, readiness gates traffic, startup covers slow boots."""

    liveness: Probe
    readiness: Probe
    startup: Probe | None = None

    @classmethod
    def same(cls, probe: Probe, *, startup: bool = False) -> Probes:
        """One check used for liveness and readiness (and startup, with a longer budget)."""
        boot = Probe(check=probe.check, period_seconds=5, timeout_seconds=3, failure_threshold=30)
        return cls(liveness=probe, readiness=probe, startup=boot if startup else None)
