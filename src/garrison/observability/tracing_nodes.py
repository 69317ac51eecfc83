"""A span per graph node, from LangChain callbacks (installed only when tracing is on).

LangGraph runs each node as a runnable whose name is the node's and whose metadata carries
`langgraph_node`; the runnables a node calls inherit that metadata under other names, which
is how a node's own start is told apart. Nodes of subgraphs nest under the node that runs
the subgraph.
"""

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode

from garrison.observability import tracing


class NodeSpans(BaseCallbackHandler):
    """Callbacks of one run attempt; its node spans are children of `parent` (the run's)."""

    run_inline = True  # called in order, on the caller's thread: no executor hop

    def __init__(self, parent: Span) -> None:
        self._root: Context = trace.set_span_in_context(parent)
        self._spans: dict[UUID, Span] = {}
        self._tasks: dict[UUID, object] = {}  # span -> the task (checkpoint_ns) it covers
        self._parents: dict[UUID, UUID | None] = {}

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._parents[run_id] = parent_run_id
        node = (metadata or {}).get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        namespace = (metadata or {}).get("langgraph_checkpoint_ns")
        parent = self._nearest_span(parent_run_id)
        if parent is not None and self._tasks.get(parent) == namespace:
            return  # a subgraph node starts its graph under the same name: one task, one span
        attributes: dict[str, Any] = {"langgraph.node": str(node)}
        step = (metadata or {}).get("langgraph_step")
        if isinstance(step, int):
            attributes["langgraph.step"] = step
        if isinstance(namespace, str):
            attributes["langgraph.checkpoint_ns"] = namespace
        context = self._root if parent is None else trace.set_span_in_context(self._spans[parent])
        self._spans[run_id] = tracing.tracer().start_span(
            f"node {node}", context=context, attributes=attributes
        )
        self._tasks[run_id] = namespace

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error)

    def _nearest_span(self, parent_run_id: UUID | None) -> UUID | None:
        ancestor = parent_run_id
        while ancestor is not None:
            if ancestor in self._spans:
                return ancestor
            ancestor = self._parents.get(ancestor)
        return None

    def _end(self, run_id: UUID, error: BaseException | None) -> None:
        self._parents.pop(run_id, None)
        self._tasks.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is None:
            return
        if error is not None:
            if isinstance(error, GraphBubbleUp):  # an interrupt or a drain: not a failure
                span.set_attribute("langgraph.interrupted", True)
            else:
                span.record_exception(error)
                span.set_status(StatusCode.ERROR, type(error).__name__)
        span.end()
