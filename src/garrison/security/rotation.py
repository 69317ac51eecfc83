"""Re-encrypting stored data under the active key (`garrison keys rotate-data`).

Checkpoints go a batch of threads at a time, store items a page of (namespace, key) at a
time; each batch is one transaction. Rows already under the active key are skipped
without decrypting, so a run that stops half-way (crash, Ctrl-C) is resumed by running it
again, or from the reported cursor with `--after-thread`. Rows written before encryption
was enabled are sealed on the way, which is what makes `encryption.strict` safe to turn
on afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class RewrappableCheckpoints(Protocol):
    async def athread_ids(self, *, after: str | None, limit: int) -> list[str]: ...

    async def arewrap_threads(self, thread_ids: Sequence[str]) -> int: ...


class RewrappableApiRows(Protocol):
    async def arewrap_api_rows(self, batch_size: int) -> int: ...


class RewrappableStore(Protocol):
    async def arewrap_batch(
        self, after: tuple[str, str] | None, limit: int
    ) -> tuple[int, tuple[str, str] | None]: ...


@dataclass(slots=True)
class RotationProgress:
    threads: int = 0
    checkpoint_rows: int = 0  # rows re-encrypted (checkpoints, blobs, writes)
    store_batches: int = 0
    store_items: int = 0  # items re-encrypted
    api_rows: int = 0  # thread, run, cron and assistant rows re-encrypted
    last_thread: str | None = None  # resume point for `--after-thread`


async def rotate_data(
    checkpoints: RewrappableCheckpoints,
    store: RewrappableStore,
    *,
    batch_size: int = 200,
    after_thread: str | None = None,
    on_progress: Callable[[RotationProgress], None] = lambda _: None,
    api_rows: RewrappableApiRows | None = None,
) -> RotationProgress:
    """Re-encrypt every checkpoint row, store item and (with `api_rows`) sealed API-table
    field under the active key."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    progress = RotationProgress(last_thread=after_thread)
    while True:
        threads = await checkpoints.athread_ids(after=progress.last_thread, limit=batch_size)
        if not threads:
            break
        progress.checkpoint_rows += await checkpoints.arewrap_threads(threads)
        progress.threads += len(threads)
        progress.last_thread = threads[-1]
        on_progress(progress)
    cursor: tuple[str, str] | None = None
    while True:
        changed, cursor = await store.arewrap_batch(cursor, batch_size)
        progress.store_items += changed
        progress.store_batches += 1
        on_progress(progress)
        if cursor is None:
            break
    if api_rows is not None:
        progress.api_rows = await api_rows.arewrap_api_rows(batch_size)
        on_progress(progress)
    return progress


__all__ = [
    "RewrappableApiRows",
    "RewrappableCheckpoints",
    "RewrappableStore",
    "RotationProgress",
    "rotate_data",
]
