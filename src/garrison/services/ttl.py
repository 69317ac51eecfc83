"""Thread time-to-live: a sweeper deletes expired threads or prunes them to their latest
checkpoint (`strategy` "delete" or "keep_latest", per thread or from the project's
`checkpointer.ttl`)."""

import asyncio
import contextlib
import logging

from garrison.domain.clock import utcnow
from garrison.domain.principal import Principal
from garrison.services.threads import ThreadService
from garrison.storage.ports import Storage

logger = logging.getLogger(__name__)


class ThreadTTLSweeper:
    def __init__(
        self,
        storage: Storage,
        threads: ThreadService,
        *,
        interval_seconds: float,
        batch_limit: int,
    ) -> None:
        self._storage = storage
        self._threads = threads
        self._interval = interval_seconds
        self._limit = batch_limit
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """Handle one batch of expired threads; returns how many were swept."""
        swept = 0
        for tenant_id, thread_id, strategy in await self._storage.threads.expired(
            utcnow(), self._limit
        ):
            principal = Principal(tenant_id=tenant_id)
            try:
                if strategy == "delete":
                    await self._threads.delete(principal, thread_id)
                else:
                    await self._storage.checkpointer.aprune([thread_id], strategy="keep_latest")
                    await self._storage.threads.clear_ttl(tenant_id, thread_id)
            except Exception:
                logger.exception("TTL sweep of thread %s failed; retrying next sweep", thread_id)
                continue
            swept += 1
        if swept:
            logger.info("TTL sweep: %d expired thread(s) handled", swept)
        return swept

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("TTL sweep failed")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="thread-ttl-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
