"""spec.schedule: a backup schedule is refused exactly when a Kubernetes CronJob would refuse it
(robfig/cron v3.0.1's ParseStandard, and no TZ), including where croniter and cronsim differ;
and the longest wait between its runs is the one robfig/cron's matching gives."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spec.schedule import longest_gap, schedule_problem


@pytest.mark.parametrize(
    "schedule",
    [
        "30 2 * * *",
        "*/15 * * * *",
        "5/15 * * * *",  # from 5 to the end, every 15
        "0 0 1-31/2 * *",
        "0 0 * JAN,feb *",
        "0 9 ? * MON-FRI",  # ? in any field, names in any case
        "? * * * *",
        "0 0 * * sun-sat",
        "1,,2 * * * *",  # empty list parts are dropped
        "+5 * * * *",  # strconv.Atoi takes a sign
        "*-5 * * * *",  # what follows a star's hyphen is ignored
        "@daily",
        "@midnight",
        "@annually",
        "@every 1h30m",
        "@every 0",
    ],
)
def test_what_a_cronjob_takes_passes(schedule: str) -> None:
    assert schedule_problem(schedule) is None


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("", "it is empty"),
        ("every night", "expected exactly 5 fields"),
        ("* * * * * *", "expected exactly 5 fields"),  # no seconds field
        ("0 0 * * * 2025", "expected exactly 5 fields"),
        ("0 0 * * 7", "day of week '7': end of range (7) above maximum (6)"),
        ("0 0 L * *", "day of month 'L': 'L' is not a number"),
        ("0 0 * * 5#3", "day of week '5#3': '5#3' is not a number"),
        ("0 0 15W * *", "'15W' is not a number"),
        ("0 24 * * *", "hour '24': end of range (24) above maximum (23)"),
        ("0 0 0 * *", "day of month '0': beginning of range (0) below minimum (1)"),
        ("0 0 * * 6-0", "beginning of range (6) beyond end of range (0)"),
        ("*/0 * * * *", "step of range should be a positive number"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("*/2/3 * * * *", "too many slashes"),
        ("*/-1 * * * *", "negative number (-1) not allowed"),
        ("@reboot", "unknown descriptor"),
        ("@DAILY", "unknown descriptor"),
        ("@every night", "unknown descriptor"),
    ],
)
def test_what_a_cronjob_refuses_is_refused_with_the_reason(schedule: str, reason: str) -> None:
    problem = schedule_problem(schedule)
    assert problem is not None and problem.startswith(f"{schedule!r} is not a cron schedule")
    assert reason in problem


@pytest.mark.parametrize("schedule", ["TZ=UTC 0 3 * * *", "CRON_TZ=Europe/Paris 0 3 * * *"])
def test_a_time_zone_in_the_schedule_is_refused_as_the_api_server_does(schedule: str) -> None:
    problem = schedule_problem(schedule)
    assert problem is not None and "Kubernetes refuses TZ or CRON_TZ" in problem


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("15 2 * * *", timedelta(days=1)),
        ("@daily", timedelta(days=1)),
        ("@yearly", timedelta(days=366)),  # across 2028's leap day
        ("0 */6 * * *", timedelta(hours=6)),
        ("30 1,2 * * *", timedelta(hours=23)),  # 02:30 to the next day's 01:30
        # Weekdays only: Friday's run to Monday's; ? is a star, as robfig/cron reads it.
        ("0 1 * * 1-5", timedelta(days=3)),
        ("0 9 ? * MON-FRI", timedelta(days=3)),
        # The first of the month: January's 31 days are the longest wait.
        ("0 0 1 * *", timedelta(days=31)),
        # Every minute of January, then nothing until the next: Jan 31 23:59 to Jan 1 00:00,
        # over a leap year's February. A few thousand runs followed would see one minute.
        ("* * * 1 *", timedelta(days=335, minutes=1)),
        ("0 0 29 2 *", timedelta(days=4 * 365 + 1)),
        # A star in either day field: a day must match both (Mondays only) ...
        ("0 0 * * 1", timedelta(days=7)),
        # ... with neither starred, either (every day of the month, or a Monday) ...
        ("0 0 1-31 * 1", timedelta(days=1)),
        # ... and a star with a step above 1 is no star: odd days of the month, or Mondays.
        ("0 0 */2 * 1", timedelta(days=2)),
        ("@every 1h30m", timedelta(minutes=90)),
        ("@every 90.5s", timedelta(seconds=90)),  # Every keeps whole seconds
        ("@every 0", timedelta(seconds=1)),  # and one at least
    ],
)
def test_the_longest_wait_between_runs_follows_robfig_cron(schedule: str, gap: timedelta) -> None:
    assert longest_gap(schedule) == gap


def test_a_schedule_that_never_comes_round_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"'0 0 30 2 \*' runs less than twice in 8 years"):
        longest_gap("0 0 30 2 *")


def test_a_refused_schedule_has_no_gap_but_its_reason() -> None:
    with pytest.raises(ValueError, match="day of week '7': end of range"):
        longest_gap("0 0 * * 7")
