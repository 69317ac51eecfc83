"""SQLite rows <-> storage models, and small SQL helpers shared by the repositories."""

import sqlite3
from typing import Any

from garrison import serde
from garrison.domain.clock import from_text
from garrison.domain.errors import InvalidArgumentError
from garrison.domain.runs import CancelAction, MultitaskStrategy, RunStatus
from garrison.domain.threads import ThreadStatus
from garrison.storage.models import Assistant, Cron, Json, Run, SortOrder, Thread, ThreadTTL


def dict_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur


def fetch_one(conn: sqlite3.Connection, sql: str, params: Any = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = dict_cursor(conn).execute(sql, params).fetchone()
    return row


def fetch_all(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[sqlite3.Row]:
    return list(dict_cursor(conn).execute(sql, params).fetchall())


def json_text(value: Any) -> str:
    return serde.dumps_text(value)


def json_value(text: str | None) -> Any:
    return None if text is None else serde.loads(text)


def order_by(column: str, allowed: frozenset[str], order: SortOrder, tiebreak: str) -> str:
    """An ORDER BY clause from a whitelisted column (never interpolate client text)."""
    if column not in allowed:
        raise InvalidArgumentError(
            f"Invalid sort_by {column!r}; expected one of {', '.join(sorted(allowed))}"
        )
    direction = "ASC" if order is SortOrder.ASC else "DESC"
    return f'ORDER BY "{column}" {direction}, {tiebreak} {direction}'


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def to_assistant(row: sqlite3.Row) -> Assistant:
    return Assistant(
        assistant_id=row["assistant_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        graph_id=row["graph_id"],
        name=row["name"],
        description=row["description"],
        config=json_value(row["config"]),
        context=json_value(row["context"]),
        metadata=json_value(row["metadata"]),
        version=row["version"],
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
    )


def to_thread(row: sqlite3.Row) -> Thread:
    ttl = None
    if row["ttl_strategy"] is not None and row["expires_at"] is not None:
        ttl = ThreadTTL(
            strategy=row["ttl_strategy"],
            minutes=row["ttl_minutes"],
            expires_at=from_text(row["expires_at"]),
        )
    return Thread(
        thread_id=row["thread_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        status=ThreadStatus(row["status"]),
        metadata=json_value(row["metadata"]),
        config=json_value(row["config"]),
        values=json_value(row["values"]),
        interrupts=json_value(row["interrupts"]),
        error=json_value(row["error"]),
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
        state_updated_at=from_text(row["state_updated_at"]),
        ttl=ttl,
    )


def to_run(row: sqlite3.Row) -> Run:
    return Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        assistant_id=row["assistant_id"],
        status=RunStatus(row["status"]),
        metadata=json_value(row["metadata"]),
        kwargs=json_value(row["kwargs"]),
        multitask_strategy=MultitaskStrategy(row["multitask_strategy"]),
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
        attempt=row["attempt"],
        temporary=bool(row["temporary"]),
        cancel_action=CancelAction(row["cancel_action"]) if row["cancel_action"] else None,
        error=json_value(row["error"]),
    )


def to_cron(row: sqlite3.Row) -> Cron:
    return Cron(
        cron_id=row["cron_id"],
        tenant_id=row["tenant_id"],
        owner=row["owner"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        payload=json_value(row["payload"]),
        metadata=json_value(row["metadata"]),
        end_time=from_text(row["end_time"]) if row["end_time"] else None,
        next_run_date=from_text(row["next_run_date"]) if row["next_run_date"] else None,
        enabled=bool(row["enabled"]),
        on_run_completed=row["on_run_completed"],
        user_id=row["user_id"],
        created_at=from_text(row["created_at"]),
        updated_at=from_text(row["updated_at"]),
    )


def merged(current: Json, patch: Json | None) -> Json:
    """Shallow merge, as LangGraph Server merges metadata on update."""
    return current if not patch else {**current, **patch}
