"""SQL for an AccessFilter (see `garrison.domain.access`) on a table with `owner` and JSON
`metadata` columns."""

from garrison.domain.access import AccessFilter
from garrison.storage.sqlite.rows import json_text


def access_clauses(access: AccessFilter | None) -> tuple[list[str], list[object]]:
    if access is None:
        return [], []
    clauses = ["json_contains(metadata, ?)" for _ in access.metadata]
    params: list[object] = [json_text(pattern) for pattern in access.metadata]
    if access.owner is not None:
        clauses.append("owner = ?")
        params.append(access.owner)
    return clauses, params
