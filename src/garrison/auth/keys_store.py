"""The API key repository on its own, for the `garrison keys` commands.

Opening the whole storage would take the embedded data-directory lock, which a running
server holds; key management only needs the keys table, so it opens the database alone
(SQLite in WAL mode takes concurrent writers; the busy timeout covers the overlap).
"""

import contextlib
from collections.abc import AsyncIterator

from garrison.config.settings import Settings
from garrison.storage.ports import ApiKeyRepository


@contextlib.asynccontextmanager
async def open_api_keys(settings: Settings) -> AsyncIterator[ApiKeyRepository]:
    url = settings.database.url
    if url is None:
        from garrison.storage.sqlite.api_keys import SqliteApiKeys
        from garrison.storage.sqlite.database import SqliteDatabase

        settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        sqlite = await SqliteDatabase.open(
            settings.storage.sqlite_path, busy_timeout_ms=settings.storage.sqlite_busy_timeout_ms
        )
        try:
            yield SqliteApiKeys(sqlite)
        finally:
            await sqlite.close()
        return
    from garrison.storage.postgres.api_keys import PostgresApiKeys
    from garrison.storage.postgres.database import PostgresDatabase
    from garrison.storage.postgres.migrate import require_schema

    postgres = await PostgresDatabase.open(
        url.get_secret_value(),
        min_size=1,
        max_size=1,
        connect_timeout_seconds=settings.database.connect_timeout_seconds,
        name="garrison-keys",
    )
    try:
        async with postgres.connection() as conn:
            await require_schema(conn, None)
        yield PostgresApiKeys(postgres)
    finally:
        await postgres.close()
