"""`garrison keys rotate-data`: re-encrypt every stored checkpoint, store item and sealed
API-table field (run input, thread state copies, cron payloads, sensitive metadata) under
the active encryption key (the first of `GARRISON_ENCRYPTION_KEYS`).

Run it after putting a new key first: the old key can be removed once it reports done.
It is safe next to a running server (each batch is one transaction) and safe to repeat.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from garrison.config.project import load_project
from garrison.config.settings import Settings
from garrison.domain.errors import GarrisonError, InvalidArgumentError
from garrison.security import rotation
from garrison.security.at_rest import AtRestEncryption
from garrison.security.envelope import DecryptionError
from garrison.security.rotation import RotationProgress

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="langgraph.json / garrison.json")
]


async def rotate_storage(
    settings: Settings, *, batch_size: int, after_thread: str | None
) -> RotationProgress:
    # Never strict: sealing the rows stored before encryption is part of the job.
    encryption = AtRestEncryption.from_settings(
        settings.encryption, production=settings.server.production, strict=False
    )
    if not encryption.enabled:
        raise InvalidArgumentError(
            "no encryption keys are configured: set GARRISON_ENCRYPTION_KEYS"
            " (new key first, old keys after it)"
        )

    def report(progress: RotationProgress) -> None:
        typer.echo(
            f"threads {progress.threads} (last {progress.last_thread!r}),"
            f" checkpoint rows re-encrypted {progress.checkpoint_rows},"
            f" store items re-encrypted {progress.store_items},"
            f" API rows re-encrypted {progress.api_rows}",
            err=True,
        )

    url = settings.database.url
    if url is None:
        from garrison.storage.sqlite import SqliteStorage

        sqlite = await SqliteStorage.open(
            settings.storage.sqlite_path,
            busy_timeout_ms=settings.storage.sqlite_busy_timeout_ms,
            encryption=encryption,
        )
        try:
            return await rotation.rotate_data(
                sqlite.checkpointer,
                sqlite.sqlite_store,
                batch_size=batch_size,
                after_thread=after_thread,
                on_progress=report,
                api_rows=sqlite,
            )
        finally:
            await sqlite.close()
    from garrison.storage.postgres import PostgresStorage

    postgres = await PostgresStorage.open(
        url.get_secret_value(),
        pool_min_size=1,
        pool_max_size=2,
        connect_timeout_seconds=settings.database.connect_timeout_seconds,
        encryption=encryption,
    )
    try:
        return await rotation.rotate_data(
            postgres.checkpointer,
            postgres.postgres_store,
            batch_size=batch_size,
            after_thread=after_thread,
            on_progress=report,
            api_rows=postgres,
        )
    finally:
        await postgres.close()


def rotate_data(
    config: ConfigOption = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Threads (or store items) per transaction")
    ] = 200,
    after_thread: Annotated[
        str | None, typer.Option(help="Resume after this thread id (printed as progress)")
    ] = None,
) -> None:
    """Re-encrypt all stored data under the active key (and encrypt rows stored before
    encryption was enabled)."""
    from garrison.cli import project_path

    try:
        settings = Settings.load(load_project(project_path(config)).settings_values())
        done = asyncio.run(
            rotate_storage(settings, batch_size=batch_size, after_thread=after_thread)
        )
    except (GarrisonError, DecryptionError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"done: {done.threads} threads, {done.checkpoint_rows} checkpoint rows and"
        f" {done.store_items} store items and {done.api_rows} API rows (threads, runs,"
        " crons, assistants) re-encrypted under the active key"
    )


__all__ = ["rotate_data", "rotate_storage"]
