"""Time in UTC, and its one text form in storage and on the wire."""

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime) -> str:
    """Fixed-width ISO-8601 in UTC, so stored timestamps sort as text."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def after(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)
