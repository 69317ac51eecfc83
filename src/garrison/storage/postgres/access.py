"""SQL for an AccessFilter (see `garrison.domain.access`) on a table with `owner` and jsonb
`metadata` columns."""

from psycopg import sql

from garrison.domain.access import AccessFilter
from garrison.storage.postgres.rows import jsonb


def access_clauses(access: AccessFilter | None) -> tuple[list[sql.Composable], list[object]]:
    if access is None:
        return [], []
    clauses: list[sql.Composable] = [sql.SQL("metadata @> %s") for _ in access.metadata]
    params: list[object] = [jsonb(pattern) for pattern in access.metadata]
    if access.owner is not None:
        clauses.append(sql.SQL("owner = %s"))
        params.append(access.owner)
    return clauses, params
