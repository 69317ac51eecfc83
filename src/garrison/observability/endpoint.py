"""A process's `/metrics`: everything the process counts, plus the readings taken at
scrape time, for the API process and the worker process alike."""

from garrison.broker.ports import Broker
from garrison.observability import exposition
from garrison.observability.probes import HealthProbe, PoolSampler
from garrison.storage.ports import Storage


class MetricsEndpoint:
    def __init__(
        self,
        *,
        storage: Storage,
        broker: Broker,
        cache_seconds: float = 2.0,
        sample_seconds: float = 5.0,
    ) -> None:
        self._probe = HealthProbe(
            queue_stats=storage.runs.queue_stats,
            broker_ping=broker.ping,
            cache_seconds=cache_seconds,
        )
        self._sampler = PoolSampler(
            db=storage.pool_stats, redis=broker.pool_stats, interval_seconds=sample_seconds
        )

    async def start(self) -> None:
        await self._sampler.start()

    async def stop(self) -> None:
        await self._sampler.stop()
        exposition.process_exited()

    async def render(self) -> bytes:
        await self._probe.refresh()
        self._sampler.sample()  # a scrape sees this process's pools as of now
        return exposition.render([self._probe])
