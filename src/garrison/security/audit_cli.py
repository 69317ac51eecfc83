"""`garrison audit verify | export`: check the audit log's hash chain, and export records
for compliance reports.

Like `garrison keys`, these open the database alone (not the whole storage), so they run
next to a live server; they only read.
"""

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

import orjson
import typer

from garrison.config.project import load_project
from garrison.config.settings import Settings
from garrison.domain.errors import GarrisonError
from garrison.security.audit import ChainBreak, ChainVerifier
from garrison.storage.ports import AuditLog
from garrison.storage.postgres.audit import PostgresAuditLog
from garrison.storage.sqlite.audit import SqliteAuditLog
from garrison.storage.standalone import open_repository

__all__ = ["audit_app", "export_records", "open_audit_log", "verify_log"]

T = TypeVar("T")
PAGE = 1000

audit_app = typer.Typer(no_args_is_help=True, help="Verify and export the audit log.")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="langgraph.json / garrison.json")
]


class ExportFormat(StrEnum):
    jsonl = "jsonl"


def open_audit_log(settings: Settings) -> contextlib.AbstractAsyncContextManager[AuditLog]:
    return open_repository(settings, SqliteAuditLog, PostgresAuditLog)


async def verify_log(log: AuditLog, page: int = PAGE) -> tuple[int, ChainBreak | None]:
    """Walk the chain up to the head read at the start (appends made meanwhile are left
    for the next run); returns the records checked and the first break, if any."""
    head = await log.head()
    verifier = ChainVerifier()
    while verifier.expected.seq < head.seq:
        batch = await log.records(
            after_seq=verifier.expected.seq, limit=min(page, head.seq - verifier.expected.seq)
        )
        if not batch:
            break
        problem = verifier.feed(batch)
        if problem is not None:
            return verifier.checked, problem
    return verifier.checked, verifier.finish(head)


async def export_records(
    log: AuditLog, out: TextIO, since: datetime | None, page: int = PAGE
) -> int:
    """Write records (time >= `since`) as JSON lines, in sequence order; returns how many."""
    written, after = 0, 0
    while batch := await log.records(after_seq=after, since=since, limit=page):
        for record in batch:
            out.write(orjson.dumps(record.to_json()).decode() + "\n")
        written += len(batch)
        after = batch[-1].seq
    return written


def _settings(config: Path | None) -> Settings:
    from garrison.cli import project_path

    return Settings.load(load_project(project_path(config)).settings_values())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except GarrisonError as exc:
        typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@audit_app.command()
def verify(config: ConfigOption = None) -> None:
    """Check the hash chain end to end; exit 1 at the first edited, deleted or reordered
    record."""
    settings = _settings(config)

    async def check() -> tuple[int, ChainBreak | None]:
        async with open_audit_log(settings) as log:
            return await verify_log(log)

    checked, problem = _run(check())
    if problem is not None:
        typer.secho(
            f"audit log BROKEN at {problem} ({checked} records verified before it)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit log OK: {checked} records, chain intact")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("use an ISO date or time, like 2026-01-31T00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command()
def export(
    since: Annotated[
        str | None, typer.Option(help="Only records at or after this ISO time (UTC if no zone)")
    ] = None,
    format: Annotated[ExportFormat, typer.Option("--format", help="Output format")] = (
        ExportFormat.jsonl
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Export audit records, one JSON object per line, oldest first."""
    settings, start = _settings(config), _since(since)

    async def dump(out: TextIO) -> int:
        async with open_audit_log(settings) as log:
            return await export_records(log, out, start)

    if output is None:
        count = _run(dump(sys.stdout))
    else:
        with output.open("w", encoding="utf-8") as out:
            count = _run(dump(out))
    typer.echo(f"exported {count} records", err=True)
