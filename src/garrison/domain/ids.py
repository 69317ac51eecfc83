"""Identifier helpers: UUID parsing, time-ordered ids, and LangGraph's system assistant ids."""

import functools
import os
import threading
import time
import uuid

from garrison.domain.errors import InvalidArgumentError

# LangGraph Server derives each graph's default assistant id from this namespace;
# clients hard-code the resulting ids, so it must never change.
SYSTEM_ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")

_uuid7_lock = threading.Lock()
_uuid7_last = (0, 0)  # (unix ms, 12-bit counter) of the last id handed out


@functools.lru_cache(maxsize=1024)
def system_assistant_id(graph_id: str) -> str:
    """The id of the assistant the server creates for `graph_id`."""
    return str(uuid.uuid5(SYSTEM_ASSISTANT_NAMESPACE, graph_id))


def uuid7() -> str:
    """A UUIDv7 string, strictly increasing within this process.

    Runs are ordered by id within one timestamp, so ids must not go backwards when
    several are made in the same millisecond.
    """
    global _uuid7_last
    with _uuid7_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _uuid7_last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
        else:
            counter = 0
        _uuid7_last = (ms, counter)
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))


def parse_uuid(value: str, what: str) -> str:
    """Normalise `value` to the canonical UUID string, or raise a 422-class error."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgumentError(f"Invalid {what}: must be a UUID, got {value!r}") from None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
