"""Stream event ids in Redis-stream form: `<unix ms>-<seq>`."""

import re
import time

from garrison.domain.errors import InvalidArgumentError

_EVENT_ID = re.compile(r"^(\d+)(?:-(\d+|\*))?$")


class EventIdClock:
    """Hands out strictly increasing ids, even when the wall clock stalls or steps back."""

    def __init__(self) -> None:
        self._last_ms = 0
        self._seq = -1

    def next_id(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms > self._last_ms:
            self._last_ms, self._seq = ms, 0
        else:
            self._seq += 1
        return f"{self._last_ms}-{self._seq}"


def parse_event_id(value: str) -> tuple[int, int]:
    """(ms, seq) of an id as clients send it in Last-Event-ID (`ms`, `ms-seq`, `ms-*`).

    Raises InvalidArgumentError (422) for anything else; `-` is handled by callers.
    """
    match = _EVENT_ID.match(value.strip())
    if match is None:
        raise InvalidArgumentError(f"Invalid Last-Event-ID {value!r}: expected '<ms>-<seq>'")
    ms, seq = match.groups()
    if seq is None:
        return int(ms), 0  # as in Redis, a bare ms means `<ms>-0`
    if seq == "*":
        return int(ms), 2**63
    return int(ms), int(seq)
