"""Builders for the rows contract tests create."""

import uuid
from datetime import datetime

from garrison.domain.clock import after, utcnow
from garrison.domain.ids import uuid7
from garrison.domain.runs import MultitaskStrategy
from garrison.storage.models import IfExists, NewAssistant, NewRun, Thread
from garrison.storage.ports import Storage

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"


def new_assistant(graph_id: str = "g", **overrides: object) -> NewAssistant:
    fields: dict[str, object] = {
        "assistant_id": str(uuid.uuid4()),
        "graph_id": graph_id,
        "name": "assistant",
        "description": None,
        "config": {},
        "context": {},
        "metadata": {},
    }
    fields.update(overrides)
    return NewAssistant(**fields)  # type: ignore[arg-type]


async def make_thread(storage: Storage, tenant: str = TENANT, **metadata: object) -> Thread:
    return await storage.threads.create(
        tenant, "owner", str(uuid.uuid4()), dict(metadata), None, IfExists.RAISE
    )


async def pending_run(storage: Storage) -> str:
    """The id of a new pending run, on a new thread of its own."""
    thread = await make_thread(storage)
    created = await storage.runs.create(
        TENANT, None, new_run(thread.thread_id), create_thread=False
    )
    return created.run.run_id


def new_run(
    thread_id: str,
    strategy: MultitaskStrategy = MultitaskStrategy.ENQUEUE,
    *,
    available_at: datetime | None = None,
    delay: float = 0.0,
) -> NewRun:
    return NewRun(
        run_id=uuid7(),
        thread_id=thread_id,
        assistant_id="assistant-1",
        graph_id="graph-1",
        metadata={"k": "v"},
        kwargs={"input": {"x": 1}},
        multitask_strategy=strategy,
        available_at=available_at or after(utcnow(), delay),
    )
