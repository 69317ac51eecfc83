"""LangGraph state snapshots as the API shows them (`ThreadState`)."""

from typing import Any

from langgraph.types import PregelTask, StateSnapshot

from garrison import serde
from garrison.storage.models import Json


def empty_state(thread_id: str) -> Json:
    """The state of a thread no run has touched yet."""
    return {
        "values": {},
        "next": [],
        "tasks": [],
        "metadata": None,
        "created_at": None,
        "checkpoint": None,
        "parent_checkpoint": None,
        "interrupts": [],
        "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }


def snapshot_view(snapshot: StateSnapshot) -> Json:
    checkpoint = _checkpoint(snapshot.config)
    parent = _checkpoint(snapshot.parent_config)
    return {
        "values": serde.to_jsonable(snapshot.values),
        "next": list(snapshot.next),
        "tasks": [_task_view(task) for task in snapshot.tasks],
        "metadata": serde.to_jsonable(snapshot.metadata),
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": [serde.to_jsonable(i) for i in snapshot.interrupts],
        "checkpoint_id": checkpoint.get("checkpoint_id") if checkpoint else None,
        "parent_checkpoint_id": parent.get("checkpoint_id") if parent else None,
    }


def _checkpoint(config: Any) -> Json | None:
    if not config:
        return None
    configurable = dict(config.get("configurable", {}))
    return {
        key: configurable[key]
        for key in ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")
        if key in configurable
    }


def _task_view(task: PregelTask) -> Json:
    state, checkpoint = None, None
    if isinstance(task.state, StateSnapshot):
        state = snapshot_view(task.state)
    elif task.state:
        checkpoint = _checkpoint(task.state)
    return {
        "id": task.id,
        "name": task.name,
        "path": serde.to_jsonable(task.path),
        "error": f"{type(task.error).__name__}: {task.error}" if task.error else None,
        "interrupts": [serde.to_jsonable(i) for i in task.interrupts],
        "checkpoint": checkpoint,
        "state": state,
        "result": serde.to_jsonable(task.result),
    }
