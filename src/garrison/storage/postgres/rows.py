"""PostgreSQL rows <-> storage models, and small SQL helpers shared by the repositories.

Queries name their columns instead of `SELECT *`: a server-side prepared statement keeps
working when a later migration adds a column while older replicas still run.
"""

from typing import Any

from psycopg import sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from garrison import serde
from garrison.domain.errors import InvalidArgumentError
from garrison.domain.runs import CancelAction, MultitaskStrategy, RunStatus
from garrison.domain.threads import ThreadStatus
from garrison.storage.models import Assistant, Cron, Run, SortOrder, Thread, ThreadTTL

ASSISTANT_COLUMNS = (
    "assistant_id, tenant_id, owner, graph_id, name, description, config, context, metadata,"
    " version, created_at, updated_at"
)
THREAD_COLUMNS = (
    'thread_id, tenant_id, owner, status, metadata, config, "values", interrupts, error,'
    " has_next, created_at, updated_at, state_updated_at, ttl_strategy, ttl_minutes, expires_at"
)
RUN_COLUMNS = (
    "run_id, thread_id, tenant_id, owner, assistant_id, status, metadata, kwargs,"
    " multitask_strategy, temporary, created_at, updated_at, attempt, cancel_action, error"
)
CRON_COLUMNS = (
    "cron_id, tenant_id, owner, assistant_id, thread_id, schedule, timezone, payload, metadata,"
    " end_time, next_run_date, enabled, on_run_completed, user_id, created_at, updated_at"
)


def qualified(columns: str, table: str) -> str:
    """`columns` (one of the lists above) prefixed with `table.`, for joins and RETURNING."""
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))


def jsonb(value: Any) -> Jsonb:
    """A JSON parameter, encoded as everywhere else in Garrison (LangChain messages,
    dataclasses...)."""
    return Jsonb(value, dumps=serde.dumps_text)


def nullable_jsonb(value: Any) -> Jsonb | None:
    """SQL NULL for None (a JSON `null` would read back the same but index differently)."""
    return None if value is None else jsonb(value)


def order_by(column: str, allowed: frozenset[str], order: SortOrder, tiebreak: str) -> sql.Composed:
    """An ORDER BY clause from a whitelisted column (never interpolate client text)."""
    if column not in allowed:
        raise InvalidArgumentError(
            f"Invalid sort_by {column!r}; expected one of {', '.join(sorted(allowed))}"
        )
    direction = sql.SQL("ASC" if order is SortOrder.ASC else "DESC")
    return sql.SQL("ORDER BY {column} {direction}, {tiebreak} {direction}").format(
        column=sql.Identifier(column), direction=direction, tiebreak=sql.Identifier(tiebreak)
    )


def to_assistant(row: DictRow) -> Assistant:
    return Assistant(
        assistant_id=row["assistant_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        graph_id=row["graph_id"],
        name=row["name"],
        description=row["description"],
        config=row["config"],
        context=row["context"],
        metadata=row["metadata"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def to_thread(row: DictRow) -> Thread:
    ttl = None
    if row["ttl_strategy"] is not None and row["expires_at"] is not None:
        ttl = ThreadTTL(
            strategy=row["ttl_strategy"],
            minutes=row["ttl_minutes"],
            expires_at=row["expires_at"],
        )
    return Thread(
        thread_id=row["thread_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        status=ThreadStatus(row["status"]),
        metadata=row["metadata"],
        config=row["config"],
        values=row["values"],
        interrupts=row["interrupts"],
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        state_updated_at=row["state_updated_at"],
        ttl=ttl,
    )


def to_run(row: DictRow) -> Run:
    return Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        assistant_id=row["assistant_id"],
        status=RunStatus(row["status"]),
        metadata=row["metadata"],
        kwargs=row["kwargs"],
        multitask_strategy=MultitaskStrategy(row["multitask_strategy"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempt=row["attempt"],
        temporary=row["temporary"],
        cancel_action=CancelAction(row["cancel_action"]) if row["cancel_action"] else None,
        error=row["error"],
    )


def to_cron(row: DictRow) -> Cron:
    return Cron(
        cron_id=row["cron_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        payload=row["payload"],
        metadata=row["metadata"],
        end_time=row["end_time"],
        next_run_date=row["next_run_date"],
        enabled=row["enabled"],
        on_run_completed=row["on_run_completed"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
