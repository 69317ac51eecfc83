"""Assistants and their versions on PostgreSQL."""

from collections.abc import Sequence

from psycopg import sql

from garrison.domain.errors import ConflictError, NotFoundError
from garrison.security.api_rows import ASSISTANTS, ApiRowCipher
from garrison.security.lazy_reseal import reseal_row, stale_row
from garrison.storage.models import (
    Assistant,
    AssistantPatch,
    AssistantQuery,
    IfExists,
    Json,
    NewAssistant,
    Page,
)
from garrison.storage.postgres.access import access_clauses
from garrison.storage.postgres.database import Cursor, PostgresDatabase
from garrison.storage.postgres.rows import (
    ASSISTANT_COLUMNS,
    jsonb,
    order_by,
    qualified,
    to_assistant,
)

_SORTABLE = frozenset({"assistant_id", "graph_id", "name", "created_at", "updated_at"})
# System assistants (tenant_id NULL) are visible to every tenant.
_VISIBLE = "(tenant_id = %s OR tenant_id IS NULL)"

_GET = f"SELECT {ASSISTANT_COLUMNS} FROM assistants WHERE assistant_id = %s AND {_VISIBLE}"
_LOCK = f"{_GET} FOR UPDATE"
_OWNER_TENANT = "SELECT tenant_id FROM assistants WHERE assistant_id = %s"
# A new assistant and its version 1, in one statement. Nothing is written when the id is
# taken (by anyone, visible or not): the caller decides between a conflict and the row.
_INSERT = f"""
WITH inserted AS (
    INSERT INTO assistants (assistant_id, tenant_id, owner, graph_id, name, description,
                            config, context, metadata, version)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1)
    ON CONFLICT (assistant_id) DO NOTHING
    RETURNING {ASSISTANT_COLUMNS}
), versioned AS (
    INSERT INTO assistant_versions (assistant_id, version, tenant_id, graph_id, name,
                                    description, config, context, metadata, created_at)
    SELECT assistant_id, 1, tenant_id, graph_id, name, description, config, context,
           metadata, created_at
    FROM inserted
)
SELECT {ASSISTANT_COLUMNS} FROM inserted
"""
_NEXT_VERSION = (
    "SELECT COALESCE(max(version), 0) + 1 AS version FROM assistant_versions"
    " WHERE assistant_id = %s"
)
_UPDATE = f"""
UPDATE assistants SET graph_id = %s, name = %s, description = %s, config = %s, context = %s,
       metadata = %s, version = %s, updated_at = now()
WHERE assistant_id = %s
RETURNING {ASSISTANT_COLUMNS}
"""
_SNAPSHOT = """
INSERT INTO assistant_versions (assistant_id, version, tenant_id, graph_id, name, description,
                                config, context, metadata)
SELECT assistant_id, version, tenant_id, graph_id, name, description, config, context, metadata
FROM assistants WHERE assistant_id = %s
"""
_DELETE = f"DELETE FROM assistants WHERE assistant_id = %s AND {_VISIBLE}"
_VERSIONS = """
SELECT graph_id, name, description, config, context, metadata, version, created_at
FROM assistant_versions
WHERE assistant_id = %(id)s AND (%(metadata)s::jsonb IS NULL OR metadata @> %(metadata)s)
ORDER BY version DESC LIMIT %(limit)s OFFSET %(offset)s
"""
_RESTORE = f"""
UPDATE assistants AS a SET graph_id = v.graph_id, name = v.name, description = v.description,
       config = v.config, context = v.context, metadata = v.metadata, version = v.version,
       updated_at = now()
FROM assistant_versions AS v
WHERE a.assistant_id = %s AND v.assistant_id = a.assistant_id AND v.version = %s
RETURNING {qualified(ASSISTANT_COLUMNS, "a")}
"""


async def _insert(
    cur: Cursor, tenant_id: str | None, owner: str | None, new: NewAssistant, cipher: ApiRowCipher
) -> Assistant | None:
    await cur.execute(
        _INSERT,
        (
            new.assistant_id,
            tenant_id,
            owner,
            new.graph_id,
            new.name,
            new.description,
            jsonb(new.config),
            jsonb(new.context),
            jsonb(cipher.seal_metadata(ASSISTANTS, tenant_id, new.assistant_id, new.metadata)),
        ),
    )
    row = await cur.fetchone()
    return cipher.assistant(to_assistant(row)) if row else None


def _where(tenant_id: str, query: AssistantQuery) -> tuple[sql.Composable, list[object]]:
    clauses: list[sql.Composable] = [sql.SQL(_VISIBLE)]
    params: list[object] = [tenant_id]
    if query.metadata:
        clauses.append(sql.SQL("metadata @> %s"))
        params.append(jsonb(query.metadata))
    if query.graph_id:
        clauses.append(sql.SQL("graph_id = %s"))
        params.append(query.graph_id)
    if query.name:
        # strpos, not LIKE: the client's text is matched literally, wildcards included.
        clauses.append(sql.SQL("strpos(lower(name), lower(%s)) > 0"))
        params.append(query.name)
    access, access_params = access_clauses(query.access)
    clauses += access
    params += access_params
    return sql.SQL(" AND ").join(clauses), params


class PostgresAssistants:
    def __init__(self, db: PostgresDatabase, cipher: ApiRowCipher | None = None) -> None:
        self._db = db
        self._cipher = cipher or ApiRowCipher()

    async def ensure_system(self, assistants: Sequence[NewAssistant]) -> None:
        # Replicas starting together may race here; ON CONFLICT keeps the first insert.
        async with self._db.transaction() as cur:
            for new in assistants:
                await _insert(cur, None, None, new, self._cipher)

    async def create(
        self, tenant_id: str, owner: str | None, new: NewAssistant, if_exists: IfExists
    ) -> Assistant:
        async with self._db.transaction() as cur:
            created = await _insert(cur, tenant_id, owner, new, self._cipher)
            if created is not None:
                return created
            await cur.execute(_OWNER_TENANT, (new.assistant_id,))
            existing = await cur.fetchone()
        visible = existing is not None and existing["tenant_id"] in (tenant_id, None)
        if visible and if_exists is IfExists.DO_NOTHING:
            found = await self.get(tenant_id, new.assistant_id)
            if found is not None:
                return found
        raise ConflictError(f"Assistant {new.assistant_id} already exists")

    async def get(self, tenant_id: str, assistant_id: str) -> Assistant | None:
        row = await self._db.fetch_one(_GET, (assistant_id, tenant_id))
        if row is None:
            return None
        stored = to_assistant(row)
        assistant = self._cipher.assistant(stored)
        # Lazy re-encryption: a row under an older key is re-sealed (never fails the read).
        stale = stale_row(self._cipher, ASSISTANTS, stored, row)
        await reseal_row(stale, self._db.execute, mark="%s", encode=jsonb, encode_expected=jsonb)
        return assistant

    async def update(self, tenant_id: str, assistant_id: str, patch: AssistantPatch) -> Assistant:
        async with self._db.transaction() as cur:
            # Locked: concurrent updates take version numbers one after the other.
            await cur.execute(_LOCK, (assistant_id, tenant_id))
            row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"Assistant {assistant_id} not found")
            current = self._cipher.assistant(to_assistant(row))
            await cur.execute(_NEXT_VERSION, (assistant_id,))
            version = await cur.fetchone()
            assert version is not None  # an aggregate always returns a row
            await cur.execute(
                _UPDATE,
                (
                    patch.graph_id or current.graph_id,
                    patch.name if patch.name is not None else current.name,
                    patch.description if patch.description is not None else current.description,
                    jsonb(patch.config if patch.config is not None else current.config),
                    jsonb(patch.context if patch.context is not None else current.context),
                    jsonb(
                        self._cipher.seal_metadata(
                            ASSISTANTS,
                            current.tenant_id,
                            assistant_id,
                            {**current.metadata, **(patch.metadata or {})},
                        )
                    ),
                    version["version"],
                    assistant_id,
                ),
            )
            updated = await cur.fetchone()
            await cur.execute(_SNAPSHOT, (assistant_id,))
        assert updated is not None  # the row is locked by this transaction
        return self._cipher.assistant(to_assistant(updated))

    async def delete(self, tenant_id: str, assistant_id: str) -> bool:
        return await self._db.execute(_DELETE, (assistant_id, tenant_id)) > 0

    async def search(self, tenant_id: str, query: AssistantQuery) -> tuple[list[Assistant], bool]:
        where, params = _where(tenant_id, query)
        statement = sql.SQL(
            "SELECT {columns} FROM assistants WHERE {where} {order} LIMIT %s OFFSET %s"
        ).format(
            columns=sql.SQL(ASSISTANT_COLUMNS),
            where=where,
            order=order_by(query.sort_by, _SORTABLE, query.sort_order, "assistant_id"),
        )
        rows = await self._db.fetch_all(
            statement, (*params, query.page.limit + 1, query.page.offset)
        )
        return [self._cipher.assistant(to_assistant(r)) for r in rows[: query.page.limit]], len(
            rows
        ) > query.page.limit

    async def count(self, tenant_id: str, query: AssistantQuery) -> int:
        where, params = _where(tenant_id, query)
        statement = sql.SQL("SELECT count(*) AS n FROM assistants WHERE {where}").format(
            where=where
        )
        row = await self._db.fetch_one(statement, params)
        return int(row["n"]) if row else 0

    async def versions(
        self, tenant_id: str, assistant_id: str, metadata: Json | None, page: Page
    ) -> list[Assistant]:
        async with self._db.connection() as conn, conn.cursor() as cur:
            await cur.execute(_GET, (assistant_id, tenant_id))
            row = await cur.fetchone()
            if row is None:
                raise NotFoundError(f"Assistant {assistant_id} not found")
            current = self._cipher.assistant(to_assistant(row))
            await cur.execute(
                _VERSIONS,
                {
                    "id": assistant_id,
                    "metadata": jsonb(metadata) if metadata else None,
                    "limit": page.limit,
                    "offset": page.offset,
                },
            )
            rows = await cur.fetchall()
        return [
            self._cipher.assistant(
                Assistant(
                    assistant_id=assistant_id,
                    tenant_id=current.tenant_id,
                    owner=current.owner,
                    graph_id=version["graph_id"],
                    name=version["name"],
                    description=version["description"],
                    config=version["config"],
                    context=version["context"],
                    metadata=version["metadata"],
                    version=version["version"],
                    created_at=version["created_at"],
                    updated_at=version["created_at"],
                )
            )
            for version in rows
        ]

    async def set_latest(self, tenant_id: str, assistant_id: str, version: int) -> Assistant:
        async with self._db.transaction() as cur:
            await cur.execute(_LOCK, (assistant_id, tenant_id))
            if await cur.fetchone() is None:
                raise NotFoundError(f"Assistant {assistant_id} not found")
            await cur.execute(_RESTORE, (assistant_id, version))
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"Assistant {assistant_id} has no version {version}")
        return self._cipher.assistant(to_assistant(row))
