"""A bounded concurrent HTTP load on loopback, recording what every request got back; the app's
fault tests and the Docker tests drive their servers with it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    """One request of the load: what was sent and what came back (or which error)."""

    name: str
    started: float
    finished: float
    status: int | None = None
    error_code: str | None = None
    details: object = None
    """The error envelope's details."""
    failure: str | None = None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class Load:
    """A bounded concurrent load: `workers` threads, each stopping at `max_per_worker`
    requests, at `stop()`, or after `max_seconds`, whichever comes first."""

    request: Callable[[httpx.Client, str], httpx.Response]
    workers: int = 4
    max_per_worker: int = 2_000
    max_seconds: float = 30
    fresh_connections: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, worker: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        # No keep-alive when asked: each request then either connects (and is accepted) or
        # is refused, with no reuse of a connection the server is closing.
        limits = httpx.Limits(max_keepalive_connections=0 if self.fresh_connections else 1)
        with httpx.Client(timeout=15, limits=limits) as client:
            for i in range(self.max_per_worker):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                outcome = Outcome(f"load-{worker}-{i}-{uuid.uuid4().hex[:8]}", time.monotonic(), 0)
                try:
                    response = self.request(client, outcome.name)
                    outcome.status = response.status_code
                    if response.status_code >= 400:
                        body = response.json()
                        outcome.error_code = body.get("error_code")
                        outcome.details = body.get("details")
                except httpx.HTTPError as exc:
                    outcome.failure = type(exc).__name__
                outcome.finished = time.monotonic()
                with self._lock:
                    self.outcomes.append(outcome)

    def start(self) -> Load:
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "load threads did not stop"
        return list(self.outcomes)

    def wait_until_answered(self, count: int, timeout: float = 15) -> None:
        """Block until `count` requests have been answered: a warm app, whatever the machine's
        speed, before a fault is injected."""
        wait_for(
            lambda: sum(o.status is not None for o in self.since(0)) >= count,
            timeout,
            what=f"{count} answered requests",
        )

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= moment]


def wait_for(
    check: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = ""
) -> float:
    """Seconds until `check()` held; fails the test after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what}")


def status_of(url: str, timeout: float = 5) -> int | None:
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None
