"""`garrison keys create | list | revoke`: API keys for `auth.mode = api_key`."""

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from garrison.auth.api_keys import issue_key
from garrison.auth.roles import KNOWN_ROLES
from garrison.config.project import load_project
from garrison.config.settings import Settings
from garrison.domain.clock import utcnow
from garrison.domain.errors import GarrisonError
from garrison.storage.models import ApiKey
from garrison.storage.ports import ApiKeyRepository
from garrison.storage.postgres.api_keys import PostgresApiKeys
from garrison.storage.sqlite.api_keys import SqliteApiKeys
from garrison.storage.standalone import open_repository

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys (auth mode api_key).")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="langgraph.json / garrison.json")
]


def _settings(config: Path | None) -> Settings:
    from garrison.cli import project_path

    return Settings.load(load_project(project_path(config)).settings_values())


def open_api_keys(settings: Settings) -> contextlib.AbstractAsyncContextManager[ApiKeyRepository]:
    return open_repository(settings, SqliteApiKeys, PostgresApiKeys)


def _expiry(text: str | None) -> datetime | None:
    """`30d`, `12h`, or an ISO date/time (UTC when no zone is given)."""
    if text is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1] in units:
        return utcnow() + timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("use 30d, 12h, 90m or an ISO date like 2027-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _run(coroutine: object) -> object:
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except GarrisonError as exc:
        typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@keys_app.command()
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts in")],
    role: Annotated[str, typer.Option(help="admin, developer, user or viewer")],
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by")] = None,
    expires: Annotated[str | None, typer.Option(help="30d, 12h or an ISO date")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    if role not in KNOWN_ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(sorted(KNOWN_ROLES))}")
    if not tenant.strip():
        raise typer.BadParameter("tenant must not be empty")
    issued = issue_key()
    key = ApiKey(
        key_id=issued.key_id,
        secret_hash=issued.secret_hash,
        tenant_id=tenant,
        role=role,
        name=name,
        created_at=utcnow(),
        expires_at=_expiry(expires),
    )

    async def store() -> None:
        async with open_api_keys(_settings(config)) as keys:
            await keys.create(key)

    _run(store())
    typer.echo(issued.secret_text)
    typer.secho(
        f"key {key.key_id} for tenant {tenant!r} as {role}: store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
    config: ConfigOption = None,
) -> None:
    """List keys (never their secrets)."""

    async def fetch() -> list[ApiKey]:
        async with open_api_keys(_settings(config)) as keys:
            return await keys.list_keys(tenant)

    found = _run(fetch())
    assert isinstance(found, list)
    table = Table("key id", "tenant", "role", "name", "created", "expires", "revoked")
    for key in found:
        table.add_row(
            key.key_id,
            key.tenant_id,
            key.role,
            key.name or "",
            key.created_at.isoformat(timespec="seconds"),
            key.expires_at.isoformat(timespec="seconds") if key.expires_at else "never",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    Console().print(table)


@keys_app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id from `garrison keys list`")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key; the next request that uses it is refused."""

    async def mark() -> bool:
        async with open_api_keys(_settings(config)) as keys:
            return await keys.revoke(key_id, utcnow())

    if not _run(mark()):
        typer.secho(f"error: no active key {key_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")
