"""Open SSE connections per key, counted in this process.

Per process, not shared: with N API replicas a key may hold up to N x the cap. A shared
count would need leases that expire with a crashed replica; the per-process count frees a
slot exactly when its connection closes, whatever happens to the client.
"""

from collections.abc import Iterator
from contextlib import contextmanager


class StreamSlots:
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
