"""Redis being down must cost neither runs nor log volume: after a failure, calls are
skipped for a backoff window, and the outage is reported once per interval, not per call."""

import logging
import time

logger = logging.getLogger("garrison.broker.redis")

BACKOFF_START_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 5.0
REPORT_EVERY_SECONDS = 30.0


def next_backoff(current: float) -> float:
    return min(BACKOFF_CAP_SECONDS, current * 2)


class Outage:
    """Tracks whether Redis is reachable, from the outcome of the calls that use it."""

    __slots__ = ("_backoff", "_down_since", "_dropped", "_next_report", "_retry_at")

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = BACKOFF_START_SECONDS
        self._next_report = 0.0
        self._dropped = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def allows(self) -> bool:
        """Whether to try Redis now: always while it is up, then once per backoff window."""
        return self._down_since is None or time.monotonic() >= self._retry_at

    def failed(self, what: str, error: BaseException) -> None:
        now = time.monotonic()
        self._dropped += 1
        if self._down_since is None:
            self._down_since = now
            self._next_report = now + REPORT_EVERY_SECONDS
            logger.warning(
                "Redis unavailable while %s (%s: %s); events are dropped and workers poll "
                "until it is back",
                what,
                type(error).__name__,
                error,
            )
        elif now >= self._next_report:
            self._next_report = now + REPORT_EVERY_SECONDS
            logger.warning(
                "Redis still unavailable after %.0f s (%d calls skipped or failed; last while "
                "%s: %s)",
                now - self._down_since,
                self._dropped,
                what,
                error,
            )
        self._retry_at = now + self._backoff
        self._backoff = next_backoff(self._backoff)

    def skipped(self) -> None:
        self._dropped += 1

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        logger.warning(
            "Redis reachable again after %.1f s (%d calls skipped or failed meanwhile)",
            time.monotonic() - self._down_since,
            self._dropped,
        )
        self._down_since = None
        self._backoff = BACKOFF_START_SECONDS
        self._dropped = 0
