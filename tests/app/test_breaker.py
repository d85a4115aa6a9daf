"""app.breaker.CircuitBreaker's states under a clock the test controls: it opens after the
configured outages in a row, refuses calls during the cool-down, lets exactly one trial through
after it, and closes or reopens on the trial's outcome. The fault tests
(tests/app/test_faults.py) show it against a real PostgreSQL that stops answering."""

from __future__ import annotations

import asyncio

import pytest

from app.breaker import CircuitBreaker, CircuitOpenError, CircuitState


class Outage(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[tuple[str, CircuitState]] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "postgres",
        failures=3,
        cooldown_seconds=5,
        is_outage=lambda error: isinstance(error, Outage),
        on_change=(lambda name, state: changes.append((name, state)))
        if changes is not None
        else None,
        clock=clock,
    )


async def trip(b: CircuitBreaker) -> None:
    """As many outages in a row as open `breaker`'s (its `failures`)."""
    for _ in range(3):
        await call(b, Outage())


async def call(b: CircuitBreaker, error: BaseException | None = None) -> str:
    """One guarded call: 'ok', 'failed' (it went out and raised) or 'refused' (never went out)."""
    try:
        async with b.guard():
            if error is not None:
                raise error
    except CircuitOpenError:
        return "refused"
    except BaseException:
        return "failed"
    return "ok"


def test_it_opens_after_the_configured_outages_in_a_row_and_reports_each_change() -> None:
    async def run() -> list[str]:
        clock, changes = Clock(), []
        b = breaker(clock, changes)
        outcomes = [await call(b, Outage()) for _ in range(2)]
        outcomes.append(await call(b))  # a success resets the count
        outcomes += [await call(b, Outage()) for _ in range(3)]
        outcomes.append(await call(b))
        assert changes == [("postgres", CircuitState.OPEN)]
        return outcomes

    assert asyncio.run(run()) == ["failed", "failed", "ok", "failed", "failed", "failed", "refused"]


def test_errors_that_are_not_outages_do_not_count() -> None:
    async def run() -> tuple[list[str], CircuitState]:
        b = breaker(Clock())
        outcomes = [await call(b, KeyError("no such row")) for _ in range(10)]
        return outcomes, b.state

    outcomes, state = asyncio.run(run())
    assert outcomes == ["failed"] * 10
    assert state is CircuitState.CLOSED


def test_after_the_cool_down_one_trial_goes_out_and_its_success_closes_the_breaker() -> None:
    async def run() -> list[object]:
        clock, changes = Clock(), []
        b = breaker(clock, changes)
        await trip(b)
        clock.now += 4.9
        seen: list[object] = [await call(b)]  # still cooling down
        clock.now += 0.2
        trial_started, release = asyncio.Event(), asyncio.Event()

        async def trial() -> str:
            async with b.guard():
                trial_started.set()
                await release.wait()
            return "ok"

        task = asyncio.create_task(trial())
        await trial_started.wait()
        seen.append(b.state)
        seen.append(await call(b))  # a second caller while the trial is in flight
        release.set()
        seen.append(await task)
        seen.append(b.state)
        seen.append(await call(b))
        seen.append(changes)
        return seen

    assert asyncio.run(run()) == [
        "refused",
        CircuitState.HALF_OPEN,
        "refused",
        "ok",
        CircuitState.CLOSED,
        "ok",
        [
            ("postgres", CircuitState.OPEN),
            ("postgres", CircuitState.HALF_OPEN),
            ("postgres", CircuitState.CLOSED),
        ],
    ]


def test_a_failed_trial_opens_it_for_another_cool_down() -> None:
    async def run() -> list[object]:
        clock = Clock()
        b = breaker(clock)
        await trip(b)
        clock.now += 5.1
        seen: list[object] = [await call(b, Outage()), b.state]
        clock.now += 4.9
        seen.append(await call(b))
        clock.now += 0.2
        seen.append(await call(b))
        seen.append(b.state)
        return seen

    assert asyncio.run(run()) == ["failed", CircuitState.OPEN, "refused", "ok", CircuitState.CLOSED]


def test_a_cancelled_trial_proves_nothing_and_the_next_call_is_the_trial() -> None:
    async def run() -> list[object]:
        clock = Clock()
        b = breaker(clock)
        await trip(b)
        clock.now += 5.1
        seen: list[object] = [await call(b, asyncio.CancelledError()), b.state]
        seen.append(await call(b, Outage()))  # admitted as the new trial, and it fails
        seen.append(b.state)
        return seen

    assert asyncio.run(run()) == ["failed", CircuitState.HALF_OPEN, "failed", CircuitState.OPEN]


def test_calls_admitted_before_it_opened_do_not_extend_or_close_it() -> None:
    async def run() -> list[object]:
        clock = Clock()
        b = breaker(clock)
        gate = asyncio.Event()

        async def slow(error: BaseException | None) -> None:
            async with b.guard():
                await gate.wait()
                if error is not None:
                    raise error

        late = [asyncio.create_task(slow(None)), asyncio.create_task(slow(Outage()))]
        await asyncio.sleep(0)
        await trip(b)
        gate.set()
        await asyncio.gather(*late, return_exceptions=True)
        return [b.state, await call(b)]

    assert asyncio.run(run()) == [CircuitState.OPEN, "refused"]


@pytest.mark.parametrize(("failures", "cooldown"), [(0, 5.0), (3, 0.0)])
def test_it_refuses_nonsense_settings(failures: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failures must be at least 1"):
        CircuitBreaker("redis", failures=failures, cooldown_seconds=cooldown, is_outage=bool)
