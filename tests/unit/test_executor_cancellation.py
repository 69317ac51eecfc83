"""A run's cancellation reaches its end even when something below the executor swallows it.

Python 3.11's `asyncio.wait_for` returns a result that raced a cancellation instead of
raising it, and psycopg_pool waits for pooled connections with it: a cancel that lands
while a checkpoint write waits for a connection is lost, and the graph goes on. The graph
here swallows every cancellation in its nodes, the same loss made deterministic.
"""

import asyncio
import textwrap
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from garrison.broker.memory import MemoryBroker
from garrison.config.project import parse_project
from garrison.domain.clock import utcnow
from garrison.domain.runs import CancelAction, MultitaskStrategy, RunStatus
from garrison.runtime.executor import Attempt, AttemptResult, RunExecutor
from garrison.runtime.graphs import GraphRegistry
from garrison.storage.models import Run, RunEnd

STEPS = 200
STEP_SECONDS = 0.02

_SWALLOWING_GRAPH = """
import asyncio
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    done: int
    count: int


async def step(state: State) -> dict:
    try:
        await asyncio.sleep({step_seconds})
    except asyncio.CancelledError:
        pass  # lost, as in asyncio.wait_for on Python 3.11
    return {{"done": state["done"] + 1}}


def more(state: State) -> str:
    return "step" if state["done"] < state["count"] else END


builder = StateGraph(State)
builder.add_node("step", step)
builder.add_edge(START, "step")
builder.add_conditional_edges("step", more, ["step", END])
graph = builder.compile()
"""


def _executor(tmp_path: Path, broker: MemoryBroker) -> RunExecutor:
    (tmp_path / "graphs.py").write_text(
        textwrap.dedent(_SWALLOWING_GRAPH.format(step_seconds=STEP_SECONDS))
    )
    project = parse_project({"graphs": {"swallower": "./graphs.py:graph"}}, tmp_path)
    registry = GraphRegistry(project, checkpointer=InMemorySaver(), store=InMemoryStore())
    registry.load()
    return RunExecutor(registry, broker, run_timeout_seconds=60.0)


def _run() -> Run:
    now = utcnow()
    return Run(
        run_id="run-1",
        thread_id="thread-1",
        tenant_id="tenant-1",
        owner=None,
        assistant_id="assistant-1",
        status=RunStatus.RUNNING,
        metadata={},
        kwargs={
            "input": {"done": 0, "count": STEPS},
            "config": {"configurable": {"graph_id": "swallower", "thread_id": "thread-1"}},
            "durability": "sync",
        },
        multitask_strategy=MultitaskStrategy.ENQUEUE,
        created_at=now,
        updated_at=now,
        attempt=1,
        temporary=False,
    )


async def _cancel_a_few_steps_in(
    tmp_path: Path, broker: MemoryBroker, *, cancels: int
) -> tuple[asyncio.Task[AttemptResult], AttemptResult]:
    """Start an attempt of the swallowing graph, cancel it `cancels` times a few steps in,
    as the worker does (action first), and wait for its result."""
    executor = _executor(tmp_path, broker)
    attempt = Attempt(run=_run(), number=1)
    task = asyncio.create_task(executor.run_attempt(attempt))
    await asyncio.sleep(5 * STEP_SECONDS)
    attempt.cancel_action = CancelAction.INTERRUPT
    for _ in range(cancels):
        task.cancel()
    return task, await asyncio.wait_for(task, timeout=STEPS * STEP_SECONDS)


async def test_a_swallowed_cancellation_still_interrupts_the_run_at_its_next_step(
    tmp_path: Path, memory_broker: MemoryBroker
) -> None:
    task, result = await _cancel_a_few_steps_in(tmp_path, memory_broker, cancels=1)

    assert result.end is RunEnd.INTERRUPTED
    assert result.state is not None
    # Every step swallows the cancel it is given: the run ends at the step after it.
    assert result.state.values["done"] < STEPS // 2
    assert task.cancelling() == 0  # the run's end took the request; none is left pending


async def test_the_runs_end_takes_every_cancel_request_sent_for_it(
    tmp_path: Path, memory_broker: MemoryBroker
) -> None:
    # The broker's signal and the heartbeat's copy of the database flag, both before the
    # first landed.
    task, result = await _cancel_a_few_steps_in(tmp_path, memory_broker, cancels=2)

    assert result.end is RunEnd.INTERRUPTED
    assert task.cancelling() == 0
