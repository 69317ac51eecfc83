"""Assistants and their versions on SQLite."""

import sqlite3
from collections.abc import Sequence

from garrison.domain.clock import from_text, to_text, utcnow
from garrison.domain.errors import ConflictError, NotFoundError
from garrison.security.api_rows import ASSISTANTS, ApiRowCipher
from garrison.security.lazy_reseal import StaleRow, reseal_row, rowcount, stale_row
from garrison.storage.models import (
    Assistant,
    AssistantPatch,
    AssistantQuery,
    IfExists,
    Json,
    NewAssistant,
    Page,
)
from garrison.storage.sqlite.access import access_clauses
from garrison.storage.sqlite.database import SqliteDatabase
from garrison.storage.sqlite.rows import (
    fetch_all,
    fetch_one,
    json_text,
    json_value,
    merged,
    order_by,
    to_assistant,
)

_SORTABLE = frozenset({"assistant_id", "graph_id", "name", "created_at", "updated_at"})
# System assistants (tenant_id NULL) are visible to every tenant.
_VISIBLE = "(tenant_id = ? OR tenant_id IS NULL)"


def _get(
    conn: sqlite3.Connection, tenant_id: str, assistant_id: str, cipher: ApiRowCipher
) -> Assistant | None:
    row = fetch_one(
        conn,
        f"SELECT * FROM assistants WHERE assistant_id = ? AND {_VISIBLE}",
        (assistant_id, tenant_id),
    )
    return cipher.assistant(to_assistant(row)) if row else None


def _read(
    conn: sqlite3.Connection, tenant_id: str, assistant_id: str, cipher: ApiRowCipher
) -> tuple[Assistant | None, StaleRow | None]:
    """The assistant, and what to re-seal of it when it is under an older key."""
    row = fetch_one(
        conn,
        f"SELECT * FROM assistants WHERE assistant_id = ? AND {_VISIBLE}",
        (assistant_id, tenant_id),
    )
    if row is None:
        return None, None
    stored = to_assistant(row)
    return cipher.assistant(stored), stale_row(cipher, ASSISTANTS, stored, row)


def _require(
    conn: sqlite3.Connection, tenant_id: str, assistant_id: str, cipher: ApiRowCipher
) -> Assistant:
    assistant = _get(conn, tenant_id, assistant_id, cipher)
    if assistant is None:
        raise NotFoundError(f"Assistant {assistant_id} not found")
    return assistant


def _insert(
    conn: sqlite3.Connection,
    tenant_id: str | None,
    owner: str | None,
    new: NewAssistant,
    cipher: ApiRowCipher,
) -> Assistant:
    now = to_text(utcnow())
    conn.execute(
        "INSERT INTO assistants (assistant_id, tenant_id, owner, graph_id, name, description,"
        " config, context, metadata, version, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
        (
            new.assistant_id,
            tenant_id,
            owner,
            new.graph_id,
            new.name,
            new.description,
            json_text(new.config),
            json_text(new.context),
            json_text(cipher.seal_metadata(ASSISTANTS, tenant_id, new.assistant_id, new.metadata)),
            now,
            now,
        ),
    )
    _insert_version(conn, new.assistant_id, 1, now)
    return _require(conn, tenant_id or "", new.assistant_id, cipher)


def _insert_version(conn: sqlite3.Connection, assistant_id: str, version: int, now: str) -> None:
    conn.execute(
        "INSERT INTO assistant_versions (assistant_id, version, graph_id, name, description,"
        " config, context, metadata, created_at)"
        " SELECT assistant_id, ?, graph_id, name, description, config, context, metadata, ?"
        " FROM assistants WHERE assistant_id = ?",
        (version, now, assistant_id),
    )


def _create(
    conn: sqlite3.Connection,
    tenant_id: str,
    owner: str | None,
    new: NewAssistant,
    if_exists: IfExists,
    cipher: ApiRowCipher,
) -> Assistant:
    existing = fetch_one(
        conn, "SELECT tenant_id FROM assistants WHERE assistant_id = ?", (new.assistant_id,)
    )
    if existing is not None:
        visible = existing["tenant_id"] in (tenant_id, None)
        if visible and if_exists is IfExists.DO_NOTHING:
            return _require(conn, tenant_id, new.assistant_id, cipher)
        raise ConflictError(f"Assistant {new.assistant_id} already exists")
    return _insert(conn, tenant_id, owner, new, cipher)


def _ensure_system(
    conn: sqlite3.Connection, assistants: Sequence[NewAssistant], cipher: ApiRowCipher
) -> None:
    for new in assistants:
        exists = fetch_one(
            conn, "SELECT 1 FROM assistants WHERE assistant_id = ?", (new.assistant_id,)
        )
        if exists is None:
            _insert(conn, None, None, new, cipher)


def _update(
    conn: sqlite3.Connection,
    tenant_id: str,
    assistant_id: str,
    patch: AssistantPatch,
    cipher: ApiRowCipher,
) -> Assistant:
    current = _require(conn, tenant_id, assistant_id, cipher)
    metadata = cipher.seal_metadata(
        ASSISTANTS, current.tenant_id, assistant_id, merged(current.metadata, patch.metadata)
    )
    latest = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM assistant_versions WHERE assistant_id = ?",
        (assistant_id,),
    ).fetchone()[0]
    version = int(latest) + 1
    now = to_text(utcnow())
    conn.execute(
        "UPDATE assistants SET graph_id = ?, name = ?, description = ?, config = ?, context = ?,"
        " metadata = ?, version = ?, updated_at = ? WHERE assistant_id = ?",
        (
            patch.graph_id or current.graph_id,
            patch.name if patch.name is not None else current.name,
            patch.description if patch.description is not None else current.description,
            json_text(patch.config if patch.config is not None else current.config),
            json_text(patch.context if patch.context is not None else current.context),
            json_text(metadata),
            version,
            now,
            assistant_id,
        ),
    )
    _insert_version(conn, assistant_id, version, now)
    return _require(conn, tenant_id, assistant_id, cipher)


def _delete(conn: sqlite3.Connection, tenant_id: str, assistant_id: str) -> bool:
    cur = conn.execute(
        f"DELETE FROM assistants WHERE assistant_id = ? AND {_VISIBLE}", (assistant_id, tenant_id)
    )
    return cur.rowcount > 0


def _where(tenant_id: str, query: AssistantQuery) -> tuple[str, list[object]]:
    clauses: list[str] = [_VISIBLE]
    params: list[object] = [tenant_id]
    if query.metadata:
        clauses.append("json_contains(metadata, ?)")
        params.append(json_text(query.metadata))
    if query.graph_id:
        clauses.append("graph_id = ?")
        params.append(query.graph_id)
    if query.name:
        clauses.append("instr(lower(name), lower(?)) > 0")
        params.append(query.name)
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return " AND ".join(clauses), params


def _search(
    conn: sqlite3.Connection, tenant_id: str, query: AssistantQuery, cipher: ApiRowCipher
) -> tuple[list[Assistant], bool]:
    where, params = _where(tenant_id, query)
    order = order_by(query.sort_by, _SORTABLE, query.sort_order, "assistant_id")
    rows = fetch_all(
        conn,
        f"SELECT * FROM assistants WHERE {where} {order} LIMIT ? OFFSET ?",
        (*params, query.page.limit + 1, query.page.offset),
    )
    found = [cipher.assistant(to_assistant(r)) for r in rows[: query.page.limit]]
    return found, len(rows) > query.page.limit


def _count(conn: sqlite3.Connection, tenant_id: str, query: AssistantQuery) -> int:
    where, params = _where(tenant_id, query)
    return int(conn.execute(f"SELECT COUNT(*) FROM assistants WHERE {where}", params).fetchone()[0])


def _versions(
    conn: sqlite3.Connection,
    tenant_id: str,
    assistant_id: str,
    metadata: Json | None,
    page: Page,
    cipher: ApiRowCipher,
) -> list[Assistant]:
    current = _require(conn, tenant_id, assistant_id, cipher)
    sql = "SELECT * FROM assistant_versions WHERE assistant_id = ?"
    params: list[object] = [assistant_id]
    if metadata:
        sql += " AND json_contains(metadata, ?)"
        params.append(json_text(metadata))
    sql += " ORDER BY version DESC LIMIT ? OFFSET ?"
    rows = fetch_all(conn, sql, (*params, page.limit, page.offset))
    return [
        cipher.assistant(
            Assistant(
                assistant_id=assistant_id,
                tenant_id=current.tenant_id,
                owner=current.owner,
                graph_id=row["graph_id"],
                name=row["name"],
                description=row["description"],
                config=json_value(row["config"]),
                context=json_value(row["context"]),
                metadata=json_value(row["metadata"]),
                version=row["version"],
                created_at=from_text(row["created_at"]),
                updated_at=from_text(row["created_at"]),
            )
        )
        for row in rows
    ]


def _set_latest(
    conn: sqlite3.Connection, tenant_id: str, assistant_id: str, version: int, cipher: ApiRowCipher
) -> Assistant:
    _require(conn, tenant_id, assistant_id, cipher)
    row = fetch_one(
        conn,
        "SELECT * FROM assistant_versions WHERE assistant_id = ? AND version = ?",
        (assistant_id, version),
    )
    if row is None:
        raise NotFoundError(f"Assistant {assistant_id} has no version {version}")
    conn.execute(
        "UPDATE assistants SET graph_id = ?, name = ?, description = ?, config = ?, context = ?,"
        " metadata = ?, version = ?, updated_at = ? WHERE assistant_id = ?",
        (
            row["graph_id"],
            row["name"],
            row["description"],
            row["config"],
            row["context"],
            row["metadata"],
            version,
            to_text(utcnow()),
            assistant_id,
        ),
    )
    return _require(conn, tenant_id, assistant_id, cipher)


class SqliteAssistants:
    def __init__(self, db: SqliteDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def ensure_system(self, assistants: Sequence[NewAssistant]) -> None:
        await self._db.transaction(_ensure_system, assistants, self._cipher)

    async def create(
        self, tenant_id: str, owner: str | None, new: NewAssistant, if_exists: IfExists
    ) -> Assistant:
        return await self._db.transaction(_create, tenant_id, owner, new, if_exists, self._cipher)

    async def get(self, tenant_id: str, assistant_id: str) -> Assistant | None:
        assistant, stale = await self._db.read(_read, tenant_id, assistant_id, self._cipher)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        await reseal_row(stale, self._reseal, mark="?", encode=json_text)
        return assistant

    async def _reseal(self, sql: str, params: list[object]) -> int:
        return await self._db.transaction(rowcount, sql, params)

    async def update(self, tenant_id: str, assistant_id: str, patch: AssistantPatch) -> Assistant:
        return await self._db.transaction(_update, tenant_id, assistant_id, patch, self._cipher)

    async def delete(self, tenant_id: str, assistant_id: str) -> bool:
        return await self._db.transaction(_delete, tenant_id, assistant_id)

    async def search(self, tenant_id: str, query: AssistantQuery) -> tuple[list[Assistant], bool]:
        return await self._db.read(_search, tenant_id, query, self._cipher)

    async def count(self, tenant_id: str, query: AssistantQuery) -> int:
        return await self._db.read(_count, tenant_id, query)

    async def versions(
        self, tenant_id: str, assistant_id: str, metadata: Json | None, page: Page
    ) -> list[Assistant]:
        return await self._db.read(_versions, tenant_id, assistant_id, metadata, page, self._cipher)

    async def set_latest(self, tenant_id: str, assistant_id: str, version: int) -> Assistant:
        return await self._db.transaction(
            _set_latest, tenant_id, assistant_id, version, self._cipher
        )
