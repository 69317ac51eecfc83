"""Metrics that are read rather than counted: the run queue and the health of storage and
the broker (at scrape time, cached), and connection pools (sampled periodically).

Queue depth is a property of the shared database, not of a process: any process answering a
scrape reads it, at most once per `cache_seconds` however often it is scraped. Pools belong
to each process, so every process samples its own into `livesum` gauges that a scrape adds
up across processes.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from garrison.observability.metrics import DB_POOL_CONNECTIONS, REDIS_POOL_CONNECTIONS

logger = logging.getLogger(__name__)

__all__ = ["HealthProbe", "PoolSampler", "QueueReading"]


class _QueueStats(Protocol):
    @property
    def depth(self) -> int: ...

    @property
    def oldest_pending_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class QueueReading:
    storage_up: bool
    broker_up: bool
    depth: int | None = None
    oldest_age_seconds: float | None = None


class HealthProbe:
    """A Prometheus collector of queue depth and age and of storage/broker health.

    `refresh()` (awaited by the `/metrics` handler) runs the queries when the cached reading
    is older than `cache_seconds`; `collect()` (synchronous, called by the exposition)
    only reports the cached reading.
    """

    def __init__(
        self,
        *,
        queue_stats: Callable[[], Awaitable[_QueueStats]],
        broker_ping: Callable[[], Awaitable[bool]] | None = None,
        cache_seconds: float = 2.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._queue_stats = queue_stats
        self._broker_ping = broker_ping
        self._cache_seconds = cache_seconds
        self._timeout = timeout_seconds
        self._reading: QueueReading | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> QueueReading:
        async with self._lock:  # concurrent scrapes share one round of queries
            if self._reading is None or time.monotonic() - self._read_at >= self._cache_seconds:
                self._reading = await self._read()
                self._read_at = time.monotonic()
            return self._reading

    async def _read(self) -> QueueReading:
        # Both at once: during an outage each may take its whole timeout.
        broker_up, stats = await asyncio.gather(self._ping_broker(), self._read_queue())
        if stats is None:
            return QueueReading(storage_up=False, broker_up=broker_up)
        age = 0.0
        if stats.oldest_pending_at is not None:
            age = max(0.0, (datetime.now(UTC) - stats.oldest_pending_at).total_seconds())
        return QueueReading(True, broker_up, stats.depth, age)

    async def _ping_broker(self) -> bool:
        if self._broker_ping is None:
            return True  # the in-process broker is up while the process is
        try:
            async with asyncio.timeout(self._timeout):
                return await self._broker_ping()
        except Exception:
            return False

    async def _read_queue(self) -> _QueueStats | None:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._queue_stats()
        except Exception as exc:  # whatever the failure, storage cannot be read: it is down
            logger.debug("queue stats unavailable: %s", exc)
            return None

    def collect(self) -> Iterator[Metric]:
        reading = self._reading
        if reading is None:
            return
        yield GaugeMetricFamily(
            "garrison_storage_up",
            "Whether storage answered the last metrics query (1) or not (0).",
            value=int(reading.storage_up),
        )
        yield GaugeMetricFamily(
            "garrison_broker_up",
            "Whether the broker answered the last ping (1) or not (0); 1 in-process.",
            value=int(reading.broker_up),
        )
        if reading.depth is None or reading.oldest_age_seconds is None:
            return  # unknown while storage is down: no sample rather than a false zero
        yield GaugeMetricFamily(
            "garrison_queue_depth",
            "Pending runs in the queue (delayed runs included).",
            value=reading.depth,
        )
        yield GaugeMetricFamily(
            "garrison_queue_oldest_pending_age_seconds",
            "How long the oldest eligible pending run has waited; 0 when none waits.",
            value=reading.oldest_age_seconds,
        )


PoolStats = Callable[[], Mapping[str, int] | None]


class PoolSampler:
    """Copies this process's pool statistics into the pool gauges every `interval_seconds`.

    `db` returns `in_use`, `idle` and `max`, `redis` returns `in_use` and `max`, each None
    where there is no pool. Reading them is free (no I/O)."""

    def __init__(
        self,
        *,
        db: PoolStats | None = None,
        redis: PoolStats | None = None,
        interval_seconds: float = 5.0,
    ) -> None:
        self._db = db
        self._redis = redis
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> bool:
        """Record the pools now; False when this process has none."""
        db = self._db() if self._db is not None else None
        if db is not None:
            for state in ("in_use", "idle", "max"):
                DB_POOL_CONNECTIONS.labels(state).set(db.get(state, 0))
        redis = self._redis() if self._redis is not None else None
        if redis is not None:
            for state in ("in_use", "max"):
                REDIS_POOL_CONNECTIONS.labels(state).set(redis.get(state, 0))
        return db is not None or redis is not None

    async def start(self) -> None:
        if not self.sample():
            return
        self._task = asyncio.create_task(self._loop(), name="metrics-pool-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.sample()
            except Exception:
                logger.exception("sampling connection pools failed")
