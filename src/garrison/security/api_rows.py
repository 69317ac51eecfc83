"""Which API-table fields are sealed, and how, shared by the SQLite and PostgreSQL adapters.

Sealed whole (`FieldCipher.seal`): `runs.kwargs`, `runs.error`, `threads.values`,
`threads.interrupts`, `threads.config`, `threads.error`, `crons.payload`. Sealed per
sensitive key: the metadata of threads, runs, assistants (and their versions, which share
the assistant's context: a version is a copy of the assistant row) and crons.

The adapters seal on the way in (`seal`, `seal_metadata`) and open whole models on the way
out (`thread`, `run`, `cron`, `assistant`). Searches that the database can no longer answer
(thread `values`, sensitive metadata keys) are split by `thread_filter`: the adapter runs the
rest in SQL and matches the decrypted rows here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from garrison.domain.jsonfilter import json_contains
from garrison.security.field_cipher import METADATA, FieldCipher, row_context
from garrison.storage.models import Assistant, Cron, Json, Page, Run, Thread, ThreadQuery

THREADS, RUNS, CRONS, ASSISTANTS = "threads", "runs", "crons", "assistants"
# The sealed whole-value fields of each table (rotation walks these).
SEALED_FIELDS: dict[str, tuple[str, ...]] = {
    THREADS: ("values", "interrupts", "config", "error"),
    RUNS: ("kwargs", "error"),
    CRONS: ("payload",),
    ASSISTANTS: (),
}
_BATCH = 200  # candidate rows per query when a search is matched after decryption
Found = tuple[list[Thread], bool]
FetchThreads = Callable[[ThreadQuery], Awaitable[Found]]
CountThreads = Callable[[ThreadQuery], Awaitable[int]]


class ApiRowCipher:
    def __init__(self, fields: FieldCipher | None = None) -> None:
        self.fields = fields or FieldCipher()

    @property
    def enabled(self) -> bool:
        return self.fields.enabled

    # Writes ----------------------------------------------------------------------------
    def seal(self, table: str, tenant: str | None, row_id: str, field: str, value: Any) -> Any:
        return self.fields.seal(value, row_context(tenant, table, row_id, field))

    def seal_metadata(self, table: str, tenant: str | None, row_id: str, metadata: Any) -> Any:
        return self.fields.seal_metadata(metadata, row_context(tenant, table, row_id, METADATA))

    # Reads -----------------------------------------------------------------------------
    def open(self, table: str, tenant: str | None, row_id: str, field: str, stored: Any) -> Any:
        return self.fields.open(stored, row_context(tenant, table, row_id, field))

    def open_metadata(self, table: str, tenant: str | None, row_id: str, stored: Any) -> Any:
        return self.fields.open_metadata(stored, row_context(tenant, table, row_id, METADATA))

    def thread(self, thread: Thread) -> Thread:
        t, i = thread.tenant_id, thread.thread_id
        return dataclasses.replace(
            thread,
            metadata=self.open_metadata(THREADS, t, i, thread.metadata),
            config=self.open(THREADS, t, i, "config", thread.config),
            values=self.open(THREADS, t, i, "values", thread.values),
            interrupts=self.open(THREADS, t, i, "interrupts", thread.interrupts),
            error=self.open(THREADS, t, i, "error", thread.error),
        )

    def run(self, run: Run) -> Run:
        t, i = run.tenant_id, run.run_id
        return dataclasses.replace(
            run,
            metadata=self.open_metadata(RUNS, t, i, run.metadata),
            kwargs=self.open(RUNS, t, i, "kwargs", run.kwargs),
            error=self.open(RUNS, t, i, "error", run.error),
        )

    def cron(self, cron: Cron) -> Cron:
        t, i = cron.tenant_id, cron.cron_id
        return dataclasses.replace(
            cron,
            metadata=self.open_metadata(CRONS, t, i, cron.metadata),
            payload=self.open(CRONS, t, i, "payload", cron.payload),
        )

    def assistant(self, assistant: Assistant) -> Assistant:
        metadata = self.open_metadata(
            ASSISTANTS, assistant.tenant_id, assistant.assistant_id, assistant.metadata
        )
        return dataclasses.replace(assistant, metadata=metadata)

    # Rotation --------------------------------------------------------------------------
    def rewrap(self, table: str, tenant: str | None, row_id: str, field: str, stored: Any) -> Any:
        context = row_context(tenant, table, row_id, field)
        if field == METADATA:
            return self.fields.rewrap_metadata(stored, context)
        return self.fields.rewrap(stored, context)

    def stale_changes(
        self, table: str, tenant: str | None, row_id: str, stored: dict[str, Any]
    ) -> dict[str, Any]:
        """The columns of one stored row (column -> stored value) re-sealed under the
        active key, when any of them holds an envelope under an older key; {} otherwise.
        The check reads envelope headers only, so a current row costs no decryption."""
        spec = TABLE_SPECS[table]
        if not any(self.fields.is_stale(stored[c], nested=c == METADATA) for c in spec.columns):
            return {}
        return rewrapped(self, spec, tenant, row_id, stored)

    # Searches --------------------------------------------------------------------------
    def thread_filter(
        self, query: ThreadQuery
    ) -> tuple[ThreadQuery, Callable[[Thread], bool] | None]:
        """(what SQL can still filter, the rest as a predicate on opened threads); the
        predicate is None when SQL can answer the whole query."""
        if not self.enabled:
            return query, None
        kept, moved = self._split_metadata(query.metadata)
        values = query.values
        if not moved and not values:
            return query, None

        def matches(thread: Thread) -> bool:
            if moved and not json_contains(thread.metadata, moved):
                return False
            return not values or json_contains(thread.values, values)

        return dataclasses.replace(query, metadata=kept, values=None), matches

    async def search_threads(self, fetch: FetchThreads, query: ThreadQuery) -> Found:
        """`fetch` (the adapter's SQL search) for `query`, matching what SQL cannot on the
        opened rows: candidates are read in sort order a batch at a time until the page
        (and one more row, for `has_more`) is found. Cost: every candidate up to the end of
        the requested page is read and decrypted."""
        sql_query, matches = self.thread_filter(query)
        if matches is None:
            return await fetch(query)
        end = query.page.offset + query.page.limit
        found: list[Thread] = []
        offset = 0
        while len(found) <= end:
            batch, more = await fetch(
                dataclasses.replace(sql_query, page=Page(limit=_BATCH, offset=offset))
            )
            found += [thread for thread in batch if matches(thread)]
            offset += len(batch)
            if not more:
                break
        return found[query.page.offset : end], len(found) > end

    async def count_threads(
        self, fetch: FetchThreads, count: CountThreads, query: ThreadQuery
    ) -> int:
        _, matches = self.thread_filter(query)
        if matches is None:
            return await count(query)
        everything = dataclasses.replace(query, page=Page(limit=2**31 - 1, offset=0))
        threads, _ = await self.search_threads(fetch, everything)
        return len(threads)

    def _split_metadata(self, metadata: Json | None) -> tuple[Json | None, Json]:
        """Metadata filter keys SQL can match (no sensitive key anywhere below them), and
        the others."""
        kept: Json = {}
        moved: Json = {}
        for key, wanted in (metadata or {}).items():
            target = moved if self._mentions_sensitive(key, wanted) else kept
            target[key] = wanted
        return (kept or None), moved

    def _mentions_sensitive(self, key: str, value: Any) -> bool:
        if self.fields.is_sensitive(str(key)):
            return True
        if isinstance(value, dict):
            return any(self._mentions_sensitive(k, v) for k, v in value.items())
        if isinstance(value, list):
            return any(self._mentions_sensitive("", v) for v in value)
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class SealedTable:
    """One API table as rotation walks it: its key column (also the associated data's row
    id) and the columns that may hold envelopes."""

    table: str
    key: str
    columns: tuple[str, ...]


ROTATED_TABLES = (
    SealedTable(THREADS, "thread_id", (METADATA, *SEALED_FIELDS[THREADS])),
    SealedTable(RUNS, "run_id", (METADATA, *SEALED_FIELDS[RUNS])),
    SealedTable(CRONS, "cron_id", (METADATA, *SEALED_FIELDS[CRONS])),
    # Versions are re-sealed with their assistant (same associated data, see above).
    SealedTable(ASSISTANTS, "assistant_id", (METADATA,)),
)

TABLE_SPECS = {spec.table: spec for spec in ROTATED_TABLES}


def rewrapped(
    cipher: ApiRowCipher, spec: SealedTable, tenant: str | None, row_id: str, row: dict[str, Any]
) -> dict[str, Any]:
    """The columns of `row` that change when re-sealed under the active key."""
    changes: dict[str, Any] = {}
    for column in spec.columns:
        stored = row[column]
        fresh = cipher.rewrap(spec.table, tenant, row_id, column, stored)
        if fresh != stored:
            changes[column] = fresh
    return changes


__all__ = [
    "ASSISTANTS",
    "CRONS",
    "ROTATED_TABLES",
    "RUNS",
    "SEALED_FIELDS",
    "TABLE_SPECS",
    "THREADS",
    "ApiRowCipher",
    "SealedTable",
    "rewrapped",
]
