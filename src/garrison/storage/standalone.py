"""One repository on a database of its own, for command-line tools (`garrison keys`,
`garrison audit`).

Opening the whole storage would take the embedded data-directory lock, which a running
server holds; these tools need one table, so they open the database alone (SQLite in WAL
mode takes concurrent writers; the busy timeout covers the overlap). PostgreSQL must
already be migrated.
"""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from garrison.config.settings import Settings
from garrison.storage.postgres.database import PostgresDatabase
from garrison.storage.sqlite.database import SqliteDatabase

T = TypeVar("T")


@contextlib.asynccontextmanager
async def open_repository(
    settings: Settings,
    on_sqlite: Callable[[SqliteDatabase], T],
    on_postgres: Callable[[PostgresDatabase], T],
) -> AsyncIterator[T]:
    url = settings.database.url
    if url is None:
        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        sqlite = await SqliteDatabase.open(
            settings.storage.sqlite_path, busy_timeout_ms=settings.storage.sqlite_busy_timeout_ms
        )
        try:
            yield on_sqlite(sqlite)
        finally:
            await sqlite.close()
        return
    from garrison.storage.postgres.migrate import require_schema

    postgres = await PostgresDatabase.open(
        url.get_secret_value(),
        min_size=1,
        max_size=1,
        connect_timeout_seconds=settings.database.connect_timeout_seconds,
        name="garrison-cli",
    )
    try:
        async with postgres.connection() as conn:
            await require_schema(conn, None)
        yield on_postgres(postgres)
    finally:
        await postgres.close()
