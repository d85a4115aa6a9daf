"""Circuit breakers around PostgreSQL and Redis: after CIRCUIT_BREAKER_FAILURES outages in a row
the breaker opens and calls fail at once with CircuitOpenError, instead of each waiting out a
pool or socket timeout; after CIRCUIT_BREAKER_COOLDOWN_SECONDS one trial call goes through, and
its outcome closes the breaker or opens it for another cool-down.

Hand-written rather than taken from purgatory 3.0.1 or aiobreaker 1.2.0 (the maintained async
ones; aiobreaker's last release is of 2021): both let every call through while half-open, so
when the dependency is still dead each of them waits out the timeout the breaker is there to
spare, where this one admits a single trial and fails the rest at once. Both also read the
wall clock for the cool-down, and purgatory closes a half-open breaker when its trial is
cancelled (a client that went away), which proves nothing about the dependency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import IntEnum

logger = logging.getLogger("app.breaker")


class CircuitState(IntEnum):
    """The values of the app_circuit_state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpenError(RuntimeError):
    """The breaker is open (or its trial call is in flight): the dependency was not called."""

    def __init__(self, dependency: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker for {dependency} is open")
        self.dependency = dependency
        self.retry_after = retry_after


class CircuitBreaker:
    """One dependency's breaker. `guard()` wraps each call; `is_outage` says which of a call's
    exceptions count as the dependency failing (a missing row or a cancelled query does not)."""

    def __init__(
        self,
        dependency: str,
        *,
        failures: int,
        cooldown_seconds: float,
        is_outage: Callable[[BaseException], bool],
        on_change: Callable[[str, CircuitState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown_seconds <= 0:
            raise ValueError("failures must be at least 1 and cooldown_seconds above 0")
        self.dependency = dependency
        self.failures = failures
        self.cooldown_seconds = cooldown_seconds
        self.is_outage = is_outage
        self.on_change = on_change
        self.clock = clock
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    def _set(self, state: CircuitState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is CircuitState.OPEN:
            self._opened_at = self.clock()
            logger.warning(
                "circuit breaker for %s opened: calls fail at once for %gs",
                self.dependency,
                self.cooldown_seconds,
                extra={"dependency": self.dependency},
            )
        elif state is CircuitState.CLOSED:
            logger.info(
                "circuit breaker for %s closed",
                self.dependency,
                extra={"dependency": self.dependency},
            )
        if self.on_change is not None:
            self.on_change(self.dependency, state)

    def _admit(self) -> bool:
        """True for the trial call; raises CircuitOpenError for a call that must not go out."""
        if self.state is CircuitState.CLOSED:
            return False
        remaining = self._opened_at + self.cooldown_seconds - self.clock()
        if self.state is CircuitState.OPEN and remaining > 0:
            raise CircuitOpenError(self.dependency, remaining)
        if self._trial_in_flight:
            raise CircuitOpenError(self.dependency, self.cooldown_seconds)
        self._set(CircuitState.HALF_OPEN)
        self._trial_in_flight = True
        return True

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        trial = self._admit()
        try:
            yield
        except Exception as error:
            if self.is_outage(error):
                self._failed(trial)
            else:
                self._succeeded(trial)
            raise
        except BaseException:
            # Cancelled: the call says nothing about the dependency; the next one is the trial.
            raise
        else:
            self._succeeded(trial)
        finally:
            if trial:
                self._trial_in_flight = False

    def _succeeded(self, trial: bool) -> None:
        self.consecutive_failures = 0
        if trial:
            self._set(CircuitState.CLOSED)

    def _failed(self, trial: bool) -> None:
        if trial:
            self._set(CircuitState.OPEN)
            return
        if self.state is not CircuitState.CLOSED:
            return  # a call admitted before the breaker opened, ending now
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failures:
            self._set(CircuitState.OPEN)
