"""Open SSE connections per key, counted in this process.

Exact for one API process; with N replicas a key may hold up to N x the cap, so deployments
with Redis share the count instead (`redis_streams.py`). Counted here, a slot is freed
exactly when its connection closes, whatever happens to the client, and a crashed process
takes its count with it.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager


class StreamSlots:
    """The counter itself, synchronous: no I/O, so no await between count and take."""

    def __init__(self, max_per_key: int) -> None:
        if max_per_key < 1:
            raise ValueError("max_per_key must be >= 1")
        self.max_per_key = max_per_key
        self._open: dict[str, int] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """Yields True and holds a slot until the block exits, or yields False when `key`
        already holds `max_per_key` slots."""
        held = self._open.get(key, 0)
        if held >= self.max_per_key:
            yield False
            return
        self._open[key] = held + 1
        try:
            yield True
        finally:
            left = self._open[key] - 1
            if left:
                self._open[key] = left
            else:
                del self._open[key]  # no entry per key that has gone quiet

    def open_count(self, key: str) -> int:
        return self._open.get(key, 0)


class MemoryStreamSlots:
    """The `StreamSlotPool` port over `StreamSlots`: the single-process adapter."""

    def __init__(self, max_per_key: int) -> None:
        self._slots = StreamSlots(max_per_key)

    @property
    def max_per_key(self) -> int:
        return self._slots.max_per_key

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        with self._slots.hold(key) as held:
            yield held

    def open_count(self, key: str) -> int:
        return self._slots.open_count(key)

    async def close(self) -> None:
        return None
