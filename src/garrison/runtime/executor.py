"""Runs one attempt of a run: stream the graph, publish its events, report the outcome."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from langgraph.errors import (
    EmptyInputError,
    GraphBubbleUp,
    GraphDrained,
    InvalidUpdateError,
    TaskNotFound,
)
from langgraph.runtime import RunControl
from langgraph.types import Command, Send, StateSnapshot

from garrison import serde
from garrison.broker.ports import Broker
from garrison.domain.attempts import AttemptToken, current_attempt
from garrison.domain.auth_user import AuthUser
from garrison.domain.errors import GarrisonError, LeaseLostError, UnavailableError
from garrison.domain.principal import current_tenant
from garrison.domain.runs import CancelAction
from garrison.observability import tracing
from garrison.runtime.event_outbox import EventOutbox
from garrison.runtime.graphs import AnyGraph, GraphRegistry
from garrison.runtime.stream_events import (
    INTERRUPT_KEY,
    EventTranslator,
    StreamPlan,
    plan_stream,
    split_item,
)
from garrison.storage.models import Json, Run, RunEnd, ThreadState

logger = logging.getLogger(__name__)

# Exception types whose messages reach clients; any other error is reported by class name
# only, since its text may carry secrets or internal details (the log has it all).
_PUBLIC_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RuntimeError,
    RecursionError,
    TimeoutError,
    InvalidUpdateError,
    GraphBubbleUp,
    EmptyInputError,
    TaskNotFound,
    GarrisonError,  # written to be shown to clients
)


def describe_error(exc: BaseException) -> Json:
    message = str(exc) if isinstance(exc, _PUBLIC_ERRORS) else "An internal error occurred"
    return {"error": type(exc).__name__, "message": message}


@dataclass(slots=True)
class Attempt:
    """Shared by the worker and the executor for one attempt of one run."""

    run: Run
    number: int
    control: RunControl = field(default_factory=RunControl)
    cancel_action: CancelAction | None = None  # set before the worker cancels the task
    cancel_taken: bool = False  # set by the executor once the cancellation ends the run


@dataclass(frozen=True, slots=True)
class AttemptResult:
    end: RunEnd
    output: Any  # what `wait` and `join` return
    state: ThreadState | None  # None for runs without a checkpointer
    error: Json | None = None


class RunExecutor:
    def __init__(
        self, registry: GraphRegistry, broker: Broker, *, run_timeout_seconds: float
    ) -> None:
        self._registry = registry
        self._broker = broker
        self._timeout = run_timeout_seconds

    async def run_attempt(self, attempt: Attempt) -> AttemptResult:
        """Execute the attempt.

        Cancellation with `attempt.cancel_action` set ends the run as interrupted or
        rolled back; any other cancellation, and GraphDrained, propagate to the worker.
        """
        if not tracing.enabled():
            return await self._run_attempt(attempt, None)
        return await self._traced_attempt(attempt)

    async def _traced_attempt(self, attempt: Attempt) -> AttemptResult:
        from garrison.observability.tracing_nodes import NodeSpans

        run = attempt.run
        configurable = (run.kwargs.get("config") or {}).get("configurable") or {}
        with tracing.run_span(
            run_id=run.run_id,
            thread_id=run.thread_id,
            graph_id=str(configurable.get("graph_id", "")),
            attempt=attempt.number,
            configurable=configurable,
        ) as span:
            result = await self._run_attempt(attempt, NodeSpans(span))
            span.set_attribute("garrison.run.status", result.end.value)
            if result.end in (RunEnd.ERROR, RunEnd.TIMEOUT):
                tracing.mark_failed(span, result.end.value)
            return result

    async def _run_attempt(
        self, attempt: Attempt, callbacks: BaseCallbackHandler | None
    ) -> AttemptResult:
        run = attempt.run
        outbox = EventOutbox(self._broker, run.thread_id, run.run_id, run.attempt)
        try:
            result = await self._execute(attempt, outbox, callbacks)
        except BaseException:
            with contextlib.suppress(Exception):  # the attempt's own error is the one to report
                await outbox.drain()
            raise
        await outbox.drain()  # the run's end is announced after every event it published
        return result

    async def _execute(
        self, attempt: Attempt, outbox: EventOutbox, callbacks: BaseCallbackHandler | None
    ) -> AttemptResult:
        run = attempt.run
        current_tenant.set(run.tenant_id)  # the graph's store is scoped to the run's tenant
        # Checkpoint writes carry this attempt: storage that can fence them refuses a stale one.
        current_attempt.set(AttemptToken(run.run_id, attempt.number))
        kwargs = run.kwargs
        config: RunnableConfig = kwargs.get("config") or {}
        config = {
            **config,
            "configurable": _with_auth_user(config.get("configurable") or {}),
            "metadata": {**config.get("metadata", {}), "run_attempt": attempt.number},
        }
        if callbacks is not None:
            config["callbacks"] = [callbacks]
        plan = plan_stream(
            kwargs.get("stream_mode") or ["values"], bool(kwargs.get("stream_subgraphs"))
        )
        translator = EventTranslator(plan)
        persistent = not run.temporary
        graph_id = config.get("configurable", {}).get("graph_id", "")
        await _publish(outbox, "metadata", {"run_id": run.run_id, "attempt": attempt.number})
        async with self._registry.open(graph_id, config, persistent=persistent) as graph:
            try:
                async with asyncio.timeout(self._timeout):
                    await self._stream(
                        graph, run, config, plan, translator, outbox, attempt.control
                    )
            except asyncio.CancelledError:
                action = attempt.cancel_action
                task = asyncio.current_task()
                if action is None or task is None:
                    raise
                attempt.cancel_taken = True
                # The run's end takes every cancel request sent for it (the broker's signal
                # and the heartbeat's copy of the flag can both land): none stays pending
                # on the task for asyncio.timeout or a TaskGroup to misread later.
                while task.uncancel():
                    pass
                return await self._after_cancel(graph, run, action, persistent)
            except (GraphDrained, LeaseLostError, UnavailableError):
                # Not the graph's failure: the attempt is drained, fenced out, or lost its
                # storage (a checkpoint write during a database outage). The worker decides.
                raise
            except TimeoutError:
                error = {"error": "TimeoutError", "message": f"Run exceeded {self._timeout:g} s"}
                return await self._after_failure(
                    graph, run, outbox, RunEnd.TIMEOUT, error, persistent
                )
            except Exception as exc:
                logger.exception("run %s attempt %d failed", run.run_id, attempt.number)
                error = describe_error(exc)
                return await self._after_failure(
                    graph, run, outbox, RunEnd.ERROR, error, persistent
                )
            if translator.stopped_at_interrupt and persistent:
                state = await self._snapshot(graph, run)
            else:
                state = ThreadState(
                    values=_without_interrupts(translator.last_values),
                    interrupts={},
                    has_next_tasks=False,
                )
            return AttemptResult(
                end=RunEnd.SUCCESS, output=translator.output(), state=state if persistent else None
            )

    async def _stream(
        self,
        graph: AnyGraph,
        run: Run,
        config: RunnableConfig,
        plan: StreamPlan,
        translator: EventTranslator,
        outbox: EventOutbox,
        control: RunControl,
    ) -> None:
        kwargs = run.kwargs
        options: dict[str, Any] = {
            "stream_mode": plan.graph_modes,
            "subgraphs": plan.subgraphs,
            "interrupt_before": kwargs.get("interrupt_before"),
            "interrupt_after": kwargs.get("interrupt_after"),
            # Without a checkpointer (stateless runs) there is nothing to make durable, and
            # LangGraph's `sync` would wait for a checkpoint write that never happens.
            "durability": kwargs.get("durability") if graph.checkpointer else None,
            "context": kwargs.get("context"),
            "control": control,
        }
        graph_input = _graph_input(kwargs)
        if plan.use_events:
            await self._stream_with_events(
                graph, graph_input, config, plan, translator, outbox, options
            )
            return
        # Closed here, not by the garbage collector: a cancellation raised in this loop
        # must finish the graph's own clean-up before the run's end is written. (Typed
        # an iterator, `astream` is an async generator.)
        stream = cast(AsyncGenerator[Any, None], graph.astream(graph_input, config, **options))
        async with contextlib.aclosing(stream) as items:
            async for item in items:
                _deliver_swallowed_cancellation()
                namespace, mode, chunk = split_item(item, plan)
                for name, payload in translator.translate(namespace, mode, chunk):
                    await _publish(outbox, name, payload)

    async def _stream_with_events(
        self,
        graph: AnyGraph,
        graph_input: Any,
        config: RunnableConfig,
        plan: StreamPlan,
        translator: EventTranslator,
        outbox: EventOutbox,
        options: dict[str, Any],
    ) -> None:
        async for event in graph.astream_events(graph_input, config, version="v2", **options):
            # The root graph's stream events carry the stream-mode chunks themselves.
            if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
                namespace, mode, chunk = split_item(event["data"]["chunk"], plan)
                for name, payload in translator.translate(namespace, mode, chunk):
                    await _publish(outbox, name, payload)
            if "langsmith:hidden" not in (event.get("tags") or ()):
                await _publish(outbox, "events", event)

    async def _after_cancel(
        self, graph: AnyGraph, run: Run, action: CancelAction, persistent: bool
    ) -> AttemptResult:
        if not persistent:
            return AttemptResult(end=RunEnd.INTERRUPTED, output=None, state=None)
        if action is CancelAction.ROLLBACK:
            await graph.checkpointer.adelete_for_runs([run.run_id])  # type: ignore[union-attr]
        state = await self._snapshot(graph, run)
        end = RunEnd.ROLLED_BACK if action is CancelAction.ROLLBACK else RunEnd.INTERRUPTED
        return AttemptResult(end=end, output=state.values, state=state)

    async def _after_failure(
        self,
        graph: AnyGraph,
        run: Run,
        outbox: EventOutbox,
        end: RunEnd,
        error: Json,
        persistent: bool,
    ) -> AttemptResult:
        await _publish(outbox, "error", error)
        state = None
        if persistent:
            try:
                state = await self._snapshot(graph, run)
            except Exception:
                logger.exception("could not read the state of failed run %s", run.run_id)
        return AttemptResult(end=end, output={"__error__": error}, state=state, error=error)

    async def _snapshot(self, graph: AnyGraph, run: Run) -> ThreadState:
        snapshot = await graph.aget_state({"configurable": {"thread_id": run.thread_id}})
        return thread_state_of(snapshot)


def _deliver_swallowed_cancellation() -> None:
    """Raise here a cancellation that something inside the graph swallowed.

    The graph yields although this task was asked to stop and no request has been taken
    (`Task.cancelling()`): the cancellation was lost on its way. Python 3.11's
    `asyncio.wait_for` loses one when its result races it, and psycopg_pool waits for
    pooled connections with it, so a cancel that lands while a checkpoint write waits for
    a connection would otherwise let the graph run on. (`astream_events` runs the graph
    in a task of its own; the executor's task there only waits for events, which raises.)
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _publish(outbox: EventOutbox, event: str, payload: Any) -> None:
    await outbox.put(event, serde.dumps(payload))


def thread_state_of(snapshot: StateSnapshot) -> ThreadState:
    """What a thread row keeps of a state snapshot."""
    interrupts = {
        task.id: [serde.to_jsonable(i) for i in task.interrupts]
        for task in snapshot.tasks
        if task.interrupts
    }
    values = serde.to_jsonable(snapshot.values) if snapshot.values is not None else None
    return ThreadState(values=values, interrupts=interrupts, has_next_tasks=bool(snapshot.next))


def _without_interrupts(values: Any) -> Any:
    if isinstance(values, dict):
        values = {k: v for k, v in values.items() if k != INTERRUPT_KEY}
    return serde.to_jsonable(values)


def _with_auth_user(configurable: dict[str, Any]) -> dict[str, Any]:
    """The run carries its caller as a plain dict; graphs read it as a user object
    (`user.identity` and `user["identity"]`), as on LangGraph Server."""
    user = configurable.get("langgraph_auth_user")
    if not isinstance(user, dict):
        return configurable
    return {**configurable, "langgraph_auth_user": AuthUser(user)}


def _graph_input(kwargs: Json) -> Any:
    command = kwargs.get("command")
    if not command:
        return kwargs.get("input")
    options: dict[str, Any] = {}
    if "resume" in command:
        options["resume"] = command["resume"]
    if command.get("update") is not None:
        options["update"] = command["update"]
    if command.get("goto"):
        options["goto"] = _goto(command["goto"])
    return Command(**options)


def _goto(goto: Any) -> Any:
    if isinstance(goto, list):
        return [_goto(item) for item in goto]
    if isinstance(goto, dict):
        return Send(goto["node"], goto.get("input"))
    return goto
