"""Cron schedules: validation and next fire time (5-field expressions, IANA time zones)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from garrison.domain.errors import InvalidArgumentError


def parse_timezone(name: str | None) -> ZoneInfo:
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    # OSError: a name that is a tzdata directory ("America") or too long for a file name.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgumentError(f"Unknown timezone: {name!r}") from None


def validate_schedule(schedule: str) -> str:
    """Accept standard 5-field cron expressions only (no seconds, no macros beyond @hourly...)."""
    expression = schedule.strip()
    fields = expression.split()
    if not (len(fields) == 5 or (len(fields) == 1 and expression.startswith("@"))):
        raise InvalidArgumentError(
            f"Invalid cron schedule {schedule!r}: expected 5 fields (minute hour day month weekday)"
        )
    if not croniter.is_valid(expression):
        raise InvalidArgumentError(f"Invalid cron schedule: {schedule!r}")
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        # Valid fields that never match together ("0 0 31 2 *"): refuse rather than store
        # a cron that can never be scheduled.
        raise InvalidArgumentError(f"Cron schedule {schedule!r} never fires") from None
    return expression


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _fixed_time(schedule: str) -> bool:
    """True when neither the minute nor the hour field is a wildcard (as Vixie cron
    decides which jobs run again in an hour repeated by a DST change)."""
    fields = _MACROS.get(schedule.strip().lower(), schedule).split()
    return len(fields) >= 2 and not (fields[0].startswith("*") or fields[1].startswith("*"))


def _repeated_wall_time(fire: datetime) -> bool:
    # The second occurrence of a wall-clock time a fall-back transition repeats.
    return fire.fold == 1 and fire.replace(fold=0).utcoffset() != fire.utcoffset()


def next_fire(schedule: str, timezone: str | None, after: datetime) -> datetime:
    """The first fire time strictly after `after`, evaluated in `timezone`, returned in UTC.

    A fixed-time schedule ("30 1 * * *") fires once when a DST change repeats its wall
    time; wildcard schedules follow real time and also fire in the repeated hour.
    """
    zone = parse_timezone(timezone)
    fixed = _fixed_time(schedule)
    ticks = croniter(schedule, after.astimezone(zone))
    while True:
        try:
            fire: datetime = ticks.get_next(datetime)
        except CroniterBadDateError:
            raise InvalidArgumentError(f"Cron schedule {schedule!r} never fires again") from None
        if not (fixed and _repeated_wall_time(fire)):
            return fire.astimezone(UTC)
