"""Cron expressions: which are accepted, and when they fire next (time zones, DST)."""

from datetime import UTC, datetime

import pytest

from garrison.domain.cron import next_fire, parse_timezone, validate_schedule
from garrison.domain.errors import InvalidArgumentError


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "normalised"),
    [
        ("* * * * *", "* * * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
        ("15,45 8-18 * * mon-fri", "15,45 8-18 * * mon-fri"),
        ("0 0 1 JAN *", "0 0 1 JAN *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days only, but it does fire
        ("  30 2 * * *  ", "30 2 * * *"),  # surrounding blanks are dropped
        ("@hourly", "@hourly"),
        ("@daily", "@daily"),
        ("@weekly", "@weekly"),
    ],
)
def test_validate_schedule_accepts(schedule: str, normalised: str) -> None:
    assert validate_schedule(schedule) == normalised


@pytest.mark.parametrize(
    "schedule",
    [
        "",
        "* * * *",  # four fields
        "* * * * * *",  # six fields (seconds are not standard cron)
        "60 * * * *",  # minute out of range
        "* 24 * * *",  # hour out of range
        "* * * * 8",  # weekday out of range
        "a b c d e",
        "H * * * *",  # Jenkins hash syntax
        "@reboot",  # not a schedule
        "@every 5m",
        "0 0 31 2 *",  # valid fields that never fire together
        "0 0 30 2 *",
    ],
)
def test_validate_schedule_rejects(schedule: str) -> None:
    with pytest.raises(InvalidArgumentError):
        validate_schedule(schedule)


@pytest.mark.parametrize("name", ["Not/AZone", "utc", "America", "Europe/", "x" * 300, "UTC\x00"])
def test_parse_timezone_rejects_unknown_names(name: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_timezone(name)


@pytest.mark.parametrize(
    ("name", "key"), [(None, "UTC"), ("", "UTC"), ("Asia/Tokyo", "Asia/Tokyo")]
)
def test_parse_timezone_defaults_to_utc(name: str | None, key: str) -> None:
    assert parse_timezone(name).key == key


NY = "America/New_York"


@pytest.mark.parametrize(
    ("schedule", "timezone", "after", "expected"),
    [
        # Strictly after: a moment exactly on a tick yields the following tick.
        ("* * * * *", None, utc(2025, 1, 1, 10, 0), utc(2025, 1, 1, 10, 1)),
        ("* * * * *", None, utc(2025, 1, 1, 10, 0, 0, 500_000), utc(2025, 1, 1, 10, 1)),
        ("* * * * *", None, utc(2025, 1, 1, 9, 59, 59, 999_999), utc(2025, 1, 1, 10, 0)),
        ("0 9 * * *", "UTC", utc(2025, 1, 1, 9, 0), utc(2025, 1, 2, 9, 0)),
        # Wall time in the cron's zone, returned in UTC.
        ("0 9 * * *", "Asia/Tokyo", utc(2025, 1, 1, 0, 0), utc(2025, 1, 2, 0, 0)),
        ("0 9 * * *", "Asia/Kolkata", utc(2025, 1, 1, 0, 0), utc(2025, 1, 1, 3, 30)),
        ("0 9 * * *", "Europe/London", utc(2025, 1, 15), utc(2025, 1, 15, 9, 0)),  # GMT
        ("0 9 * * *", "Europe/London", utc(2025, 7, 15), utc(2025, 7, 15, 8, 0)),  # BST
        ("0 9 * * *", NY, utc(2025, 3, 8, 15, 0), utc(2025, 3, 9, 13, 0)),  # across spring DST
        # Spring forward (02:00 EST -> 03:00 EDT): a skipped wall time fires once, at 03:00.
        ("30 2 * * *", NY, utc(2025, 3, 9, 6, 0), utc(2025, 3, 9, 7, 0)),
        ("30 2 * * *", NY, utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)),
        # Fall back (02:00 EDT -> 01:00 EST): a fixed time in the repeated hour fires once...
        ("30 1 * * *", NY, utc(2025, 11, 2, 5, 0), utc(2025, 11, 2, 5, 30)),
        ("30 1 * * *", NY, utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)),
        ("@daily", NY, utc(2025, 11, 2, 3, 0), utc(2025, 11, 2, 4, 0)),
        # ...while wildcard schedules keep following real time through it.
        ("0 * * * *", NY, utc(2025, 11, 2, 5, 0), utc(2025, 11, 2, 6, 0)),
        ("0 * * * *", NY, utc(2025, 11, 2, 6, 0), utc(2025, 11, 2, 7, 0)),
        ("*/20 1 * * *", NY, utc(2025, 11, 2, 5, 40), utc(2025, 11, 2, 6, 0)),
        ("* 1 * * *", NY, utc(2025, 11, 2, 6, 10), utc(2025, 11, 2, 6, 11)),
    ],
)
def test_next_fire(
    schedule: str, timezone: str | None, after: datetime, expected: datetime
) -> None:
    fire = next_fire(schedule, timezone, after)
    assert fire == expected
    assert fire.tzinfo is UTC


def test_next_fire_accepts_non_utc_input() -> None:
    after = datetime.fromisoformat("2025-01-01T09:00:00+09:00")  # 00:00 UTC
    assert next_fire("30 0 * * *", None, after) == utc(2025, 1, 1, 0, 30)


@pytest.mark.parametrize(
    ("schedule", "timezone"),
    [("*/7 * * * *", NY), ("30 2 * * *", "Europe/Berlin"), ("15 1 * * *", "Australia/Lord_Howe")],
)
def test_next_fire_strictly_increases_through_a_year(schedule: str, timezone: str) -> None:
    moment = utc(2025, 1, 1)
    for _ in range(500):
        following = next_fire(schedule, timezone, moment)
        assert following > moment
        moment = following
