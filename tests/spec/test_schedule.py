"""spec.schedule: a backup schedule is refused exactly when a Kubernetes CronJob would refuse it
(robfig/cron v3.0.1's ParseStandard, and no TZ), including where croniter and cronsim differ."""

from __future__ import annotations

import pytest

from spec.schedule import schedule_problem


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
