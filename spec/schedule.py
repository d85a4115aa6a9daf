"""Cron schedules as a Kubernetes CronJob takes them: the one check of a backup schedule.

The API server parses `spec.schedule` with robfig/cron v3's `ParseStandard` and refuses any
"TZ" in it (kubernetes pkg/apis/batch/validation/validation.go, `validateScheduleFormat`). This
module follows robfig/cron v3.0.1 `parser.go` (`Parse`, `normalizeFields`, `getRange`,
`parseDescriptor`) and `spec.go` (the bounds and names), rule for rule, so that a schedule is
refused here exactly when the cluster would refuse it.

Hand-written because neither maintained Python cron library agrees with Kubernetes: croniter
and cronsim both accept what robfig/cron refuses (`L`, `#`, 7 for Sunday, a sixth field) and
refuse what it accepts (`@every 1h30m`, `?` in the minute field).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_DESCRIPTORS = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)
# Go's time.ParseDuration: a sequence of decimal numbers, each with a unit; "0" alone is allowed.
_GO_DURATION = re.compile(r"^[-+]?(0|(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$")
# strconv.Atoi: an optional sign and decimal digits, within int64.
_GO_INT = re.compile(r"^[-+]?[0-9]+$")
_INT64_MAX = 2**63 - 1


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
    if "TZ" in schedule:
        return (
            f"{schedule!r}: Kubernetes refuses TZ or CRON_TZ in a CronJob schedule; write the "
            "time in the cluster's time zone"
        )
    try:
        _parse(schedule)
    except _Refused as refused:
        return f"{schedule!r} is not a cron schedule: {refused}"
    return None


def _parse(spec: str) -> None:
    if not spec:
        raise _Refused("it is empty")
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return
        if spec.startswith("@every ") and _GO_DURATION.match(spec[len("@every ") :]):
            return
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
    for text, bounds in zip(fields, _FIELDS, strict=True):
        # strings.FieldsFunc drops the empty parts of "1,,2".
        for expr in (part for part in text.split(",") if part):
            try:
                _range(expr, bounds)
            except _Refused as refused:
                raise _Refused(f"{bounds.name} {expr!r}: {refused}") from None


def _range(expr: str, bounds: _Bounds) -> None:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
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
