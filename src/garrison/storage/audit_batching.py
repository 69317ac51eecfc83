"""Group commit for the audit log: appends that arrive while a write is in flight go out
together in the next transaction.

Every audited request waits for its record (the request ends once the record is durable),
so under load the appends of concurrent requests would otherwise queue one transaction
each behind the chain's single writer (SQLite's connection, PostgreSQL's head-row lock).
Batching keeps the order appends were requested in, and a failed batch fails each of its
callers, as one failed append would have.
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime

from garrison.security.audit import AuditEvent, AuditRecord, ChainHead
from garrison.storage.ports import AuditLog

_Pending = tuple[AuditEvent, asyncio.Future[AuditRecord]]


class GroupCommitAuditLog:
    """Implements `garrison.storage.ports.AuditLog` over another AuditLog."""

    def __init__(self, log: AuditLog, *, max_batch: int = 256) -> None:
        self.inner = log  # the adapter, one transaction per call (benchmarks compare both)
        self._max_batch = max_batch
        self._pending: list[_Pending] = []
        self._flushing: asyncio.Task[None] | None = None

    async def append(self, event: AuditEvent) -> AuditRecord:
        future: asyncio.Future[AuditRecord] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="audit-group-commit")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: len(batch)]
            try:
                records = await self.inner.append_many([event for event, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), record in zip(batch, records, strict=True):
                if not future.done():
                    future.set_result(record)

    async def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        return [await self.append(event) for event in events]

    async def records(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditRecord]:
        return await self.inner.records(after_seq=after_seq, since=since, limit=limit)

    async def head(self) -> ChainHead:
        return await self.inner.head()


__all__ = ["GroupCommitAuditLog"]
