"""Storage models as the wire shows them."""

from collections.abc import Iterable
from typing import Any

from garrison.storage.models import Assistant, Cron, Json, Run, Thread


def assistant_view(assistant: Assistant) -> Json:
    return {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "config": assistant.config,
        "context": assistant.context,
        "created_at": assistant.created_at,
        "updated_at": assistant.updated_at,
        "metadata": assistant.metadata,
        "version": assistant.version,
        "name": assistant.name,
        "description": assistant.description,
    }


def thread_view(thread: Thread, *, include_ttl: bool = False) -> Json:
    view: Json = {
        "thread_id": thread.thread_id,
        "created_at": thread.created_at,
        "updated_at": thread.updated_at,
        "state_updated_at": thread.state_updated_at,
        "metadata": thread.metadata,
        "config": thread.config,
        "status": thread.status.value,
        "values": thread.values,
        "interrupts": thread.interrupts,
    }
    if thread.error is not None:
        view["error"] = thread.error
    if include_ttl:
        view["ttl"] = (
            {
                "strategy": thread.ttl.strategy,
                "ttl_minutes": thread.ttl.minutes,
                "expires_at": thread.ttl.expires_at,
            }
            if thread.ttl is not None
            else None
        )
    return view


def run_view(run: Run) -> Json:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "status": run.status.value,
        "metadata": run.metadata,
        "kwargs": run.kwargs,
        "multitask_strategy": run.multitask_strategy.value,
        # Garrison's addition: how many times a worker has taken the run (0 while it
        # waits for its first), so clients can see a run that was recovered elsewhere.
        "attempt": run.attempt,
    }


def cron_view(cron: Cron) -> Json:
    return {
        "cron_id": cron.cron_id,
        "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id,
        "on_run_completed": cron.on_run_completed,
        "end_time": cron.end_time,
        "schedule": cron.schedule,
        "timezone": cron.timezone,
        "created_at": cron.created_at,
        "updated_at": cron.updated_at,
        "payload": cron.payload,
        "user_id": cron.user_id,
        "next_run_date": cron.next_run_date,
        "metadata": cron.metadata,
        "enabled": cron.enabled,
    }


def selected(view: Json, fields: Iterable[str] | None) -> Json:
    """Only the `select`ed fields of a view (all of them without a selection)."""
    if not fields:
        return view
    return {field: view.get(field) for field in fields}


def views(items: Iterable[Any], present: Any, fields: Iterable[str] | None = None) -> list[Json]:
    chosen = list(fields) if fields else None
    return [selected(present(item), chosen) for item in items]
