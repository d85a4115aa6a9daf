"""Cron schedules as a Kubernetes CronJob takes them: the one check of a backup schedule, and
the longest wait between two of its runs (what an alert on a missing run allows).

The API server parses `spec.schedule` with robfig/cron v3's `ParseStandard` and refuses any
"TZ" in it (kubernetes pkg/apis/batch/validation/validation.go, `validateScheduleFormat`). This
module follows robfig/cron v3.0.1 `parser.go` (`Parse`, `normalizeFields`, `getRange`,
`parseDescriptor`) and `spec.go` (the bounds and names, `dayMatches`), rule for rule, so that a
schedule is refused here exactly when the cluster would refuse it and runs when it would run.

Hand-written because neither maintained Python cron library agrees with Kubernetes: croniter
and cronsim both accept what robfig/cron refuses (`L`, `#`, 7 for Sunday, a sixth field) and
refuse what it accepts (`@every 1h30m`, `?` in the minute field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise

# parseDescriptor's specs, written as the fields they set (a star's bit on the day of week).
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Go's time.ParseDuration: a sequence of decimal numbers, each with a unit; "0" alone is allowed.
_GO_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(rf"^[-+]?(0|({_GO_DURATION_PART.pattern})+)$")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# strconv.Atoi: an optional sign and decimal digits, within int64.
_GO_INT = re.compile(r"^[-+]?[0-9]+$")
_INT64_MAX = 2**63 - 1
_YEARS_FOLLOWED = 8
"""Runs are followed over eight calendar years: two leap days, so a schedule of the 29th of
February has two runs to measure between."""


@dataclass(frozen=True)
class _Bounds:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS = (
    _Bounds("minute", 0, 59),
    _Bounds("hour", 0, 23),
    _Bounds("day of month", 1, 31),
    _Bounds("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    _Bounds("day of week", 0, 6, {name: number for number, name in enumerate(_DAYS)}),
)


class _Refused(ValueError):
    pass


def schedule_problem(schedule: str) -> str | None:
    """Why a CronJob cannot have `schedule` (None if it can)."""
    try:
        _accepted(schedule)
    except _Refused as refused:
        return str(refused)
    return None


def recurring_schedule_problem(schedule: str) -> str | None:
    """Why `schedule` cannot time a recurring job: a CronJob cannot have it, or it runs less
    than twice in eight years (None if it can)."""
    try:
        longest_gap(schedule)
    except ValueError as refused:
        return str(refused)
    return None


def _accepted(schedule: str) -> _Fields | timedelta:
    """`schedule` parsed as the API server and the CronJob controller take it; _Refused, with
    the whole message, when they would not."""
    if "TZ" in schedule:
        raise _Refused(
            f"{schedule!r}: Kubernetes refuses TZ or CRON_TZ in a CronJob schedule; write the "
            "time in the cluster's time zone"
        )
    try:
        return _parse(schedule)
    except _Refused as refused:
        raise _Refused(f"{schedule!r} is not a cron schedule: {refused}") from None


@dataclass(frozen=True)
class _Fields:
    """A parsed 5-field schedule: the values each field matches."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    """0 is Sunday."""
    both_days: bool
    """robfig/cron's `dayMatches`: when either day field starts with a star (its starBit), a day
    must match both; otherwise either."""

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        of_month = day.day in self.days_of_month
        of_week = day.isoweekday() % 7 in self.days_of_week
        return of_month and of_week if self.both_days else of_month or of_week


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two runs of a CronJob `schedule`, in the time zone the CronJob
    runs in (no daylight saving counted). @every follows robfig/cron's `Every`: whole seconds,
    one at least. ValueError, naming the schedule, when a CronJob cannot have it or it runs less
    than twice in eight years."""
    parsed = _accepted(schedule)  # _Refused is a ValueError
    if isinstance(parsed, timedelta):
        return max(timedelta(seconds=int(parsed.total_seconds())), timedelta(seconds=1))
    times = sorted(hour * 60 + minute for hour in parsed.hours for minute in parsed.minutes)
    first = date(2025, 1, 1)
    span = (date(first.year + _YEARS_FOLLOWED, 1, 1) - first).days
    run_days = [day for n in range(span) if parsed.runs_on(day := first + timedelta(days=n))]
    gaps = [b - a for a, b in pairwise(times)] if run_days else []
    gaps += [(b - a).days * 1440 - (times[-1] - times[0]) for a, b in pairwise(run_days)]
    if not gaps:
        raise ValueError(
            f"{schedule!r} runs less than twice in {_YEARS_FOLLOWED} years (a day that never "
            "comes, such as the 30th of February?)"
        )
    return timedelta(minutes=max(gaps))


def _parse(spec: str) -> _Fields | timedelta:
    """The fields of `spec` (a descriptor's as parseDescriptor sets them), or an @every's
    interval."""
    if not spec:
        raise _Refused("it is empty")
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return _parse(_DESCRIPTORS[spec])
        every = spec.removeprefix("@every ")
        if spec.startswith("@every ") and _GO_DURATION.match(every):
            return _go_duration(every)
        raise _Refused(
            "unknown descriptor (use @yearly, @monthly, @weekly, @daily, @hourly or @every "
            "<duration>)"
        )
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise _Refused(
            f"expected exactly 5 fields (minute hour day-of-month month day-of-week), found "
            f"{len(fields)}"
        )
    values: list[frozenset[int]] = []
    starred: list[bool] = []
    for text, bounds in zip(fields, _FIELDS, strict=True):
        field_values: set[int] = set()
        field_starred = False
        # strings.FieldsFunc drops the empty parts of "1,,2".
        for expr in (part for part in text.split(",") if part):
            try:
                matched, star = _range(expr, bounds)
            except _Refused as refused:
                raise _Refused(f"{bounds.name} {expr!r}: {refused}") from None
            field_values |= matched
            field_starred |= star
        values.append(frozenset(field_values))
        starred.append(field_starred)
    minutes, hours, days_of_month, months, days_of_week = values
    return _Fields(
        minutes=minutes,
        hours=hours,
        days_of_month=days_of_month,
        months=months,
        days_of_week=days_of_week,
        both_days=starred[2] or starred[4],
    )


def _range(expr: str, bounds: _Bounds) -> tuple[set[int], bool]:
    """The values `expr` matches, and whether it sets robfig/cron's starBit (a star or ? with no
    step above 1)."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    star = low_and_high[0] in ("*", "?")
    if star:
        # robfig/cron ignores whatever follows a star's hyphen ("*-5" is every value).
        start, end = bounds.low, bounds.high
    else:
        start = _int_or_name(low_and_high[0], bounds)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds)
        else:
            raise _Refused("too many hyphens")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        # "N/step" means "N-max/step".
        if len(low_and_high) == 1:
            end = bounds.high
        star = star and step <= 1
    else:
        raise _Refused("too many slashes")
    if start < bounds.low:
        raise _Refused(f"beginning of range ({start}) below minimum ({bounds.low})")
    if end > bounds.high:
        raise _Refused(f"end of range ({end}) above maximum ({bounds.high})")
    if start > end:
        raise _Refused(f"beginning of range ({start}) beyond end of range ({end})")
    if step == 0:
        raise _Refused("step of range should be a positive number")
    return set(range(start, end + 1, step)), star


def _int_or_name(text: str, bounds: _Bounds) -> int:
    named = bounds.names.get(text.lower())
    return named if named is not None else _int(text)


def _int(text: str) -> int:
    if not _GO_INT.match(text) or abs(int(text)) > _INT64_MAX:
        raise _Refused(f"{text!r} is not a number")
    number = int(text)
    if number < 0:
        raise _Refused(f"negative number ({number}) not allowed")
    return number


def _go_duration(text: str) -> timedelta:
    """Go's time.ParseDuration of a text `_GO_DURATION` matched."""
    if text.lstrip("+-") == "0":
        return timedelta(0)
    seconds = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_DURATION_PART.findall(text))
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)
