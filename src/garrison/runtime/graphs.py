"""The graphs a project declares, ready to run with the server's checkpointer and store."""

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph.store.base import BaseStore

from garrison.config.project import GraphSpec, ProjectConfig
from garrison.domain.errors import InvalidArgumentError, NotFoundError
from garrison.domain.ids import system_assistant_id
from garrison.runtime.loader import import_object
from garrison.storage.models import NewAssistant

logger = logging.getLogger(__name__)

AnyGraph = Pregel[Any, Any, Any, Any]

_DEFAULT_GRAPH_NAME = "LangGraph"


@dataclass(frozen=True, slots=True)
class GraphEntry:
    spec: GraphSpec
    source: Any  # a compiled graph, a StateGraph, or a factory
    compiled: AnyGraph | None  # set when the source is not a factory

    @property
    def is_factory(self) -> bool:
        return self.compiled is None

    @property
    def name(self) -> str:
        name = self.compiled.name if self.compiled is not None else None
        return name if name and name != _DEFAULT_GRAPH_NAME else self.spec.graph_id


class GraphRegistry:
    def __init__(
        self,
        project: ProjectConfig,
        *,
        checkpointer: BaseCheckpointSaver[Any],
        store: BaseStore,
    ) -> None:
        self._project = project
        self._checkpointer = checkpointer
        self._store = store
        self._entries: dict[str, GraphEntry] = {}
        self._prepared: dict[tuple[str, bool], AnyGraph] = {}

    def load(self) -> None:
        """Import every graph now, so a broken project fails at start-up, not per run."""
        for graph_id, spec in self._project.graphs.items():
            try:
                source = import_object(spec.path, self._project.root)
            except InvalidArgumentError:
                raise
            except Exception as exc:
                raise InvalidArgumentError(
                    f"graph {graph_id!r} ({spec.path}) failed to load: {exc!r}"
                ) from exc
            compiled = _compile(source) if not _is_factory(source) else None
            if compiled is None and not callable(source):
                raise InvalidArgumentError(
                    f"graph {graph_id!r}: {spec.path} is neither a graph nor a graph factory"
                )
            if compiled is not None and compiled.checkpointer not in (None, True, False):
                logger.warning(
                    "graph %r brings its own checkpointer; Garrison replaces it with its own",
                    graph_id,
                )
            self._entries[graph_id] = GraphEntry(spec=spec, source=source, compiled=compiled)

    @property
    def graph_ids(self) -> list[str]:
        return list(self._entries)

    def has(self, graph_id: str) -> bool:
        return graph_id in self._entries

    def entry(self, graph_id: str) -> GraphEntry:
        try:
            return self._entries[graph_id]
        except KeyError:
            raise NotFoundError(f"Graph {graph_id!r} not found") from None

    def system_assistants(self) -> list[NewAssistant]:
        return [
            NewAssistant(
                assistant_id=system_assistant_id(graph_id),
                graph_id=graph_id,
                name=entry.name,
                description=entry.spec.description,
                config={},
                context={},
                metadata={"created_by": "system"},
            )
            for graph_id, entry in self._entries.items()
        ]

    @contextlib.asynccontextmanager
    async def open(
        self, graph_id: str, config: RunnableConfig, *, persistent: bool = True
    ) -> AsyncIterator[AnyGraph]:
        """The graph for one run (or one introspection), wired to the server's store and,
        when `persistent`, its checkpointer. Factories are called with `config`."""
        entry = self.entry(graph_id)
        if entry.compiled is not None:
            yield self._prepared_graph(graph_id, entry.compiled, persistent)
            return
        async with _call_factory(entry.source, config) as built:
            yield self._wire(_compile(built), persistent)

    def _prepared_graph(self, graph_id: str, compiled: AnyGraph, persistent: bool) -> AnyGraph:
        key = (graph_id, persistent)
        graph = self._prepared.get(key)
        if graph is None:
            graph = self._prepared[key] = self._wire(compiled, persistent)
        return graph

    def _wire(self, graph: AnyGraph, persistent: bool) -> AnyGraph:
        return graph.copy(
            update={
                "checkpointer": self._checkpointer if persistent else None,
                "store": self._store,
            }
        )


def _is_factory(source: Any) -> bool:
    return not isinstance(source, Pregel | StateGraph) and callable(source)


def _compile(source: Any) -> AnyGraph:
    if isinstance(source, StateGraph):
        return source.compile()
    if isinstance(source, Pregel):
        return source
    raise InvalidArgumentError(f"expected a LangGraph graph, got {type(source).__name__}")


@contextlib.asynccontextmanager
async def _call_factory(factory: Any, config: RunnableConfig) -> AsyncIterator[Any]:
    takes_config = any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in inspect.signature(factory).parameters.values()
    )
    args = (config,) if takes_config else ()
    if inspect.iscoroutinefunction(factory):
        result = factory(*args)
    else:
        # A synchronous factory may do blocking work (open clients, read files).
        result = await asyncio.to_thread(factory, *args)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, contextlib.AbstractAsyncContextManager):
        async with result as graph:
            yield graph
    elif isinstance(result, contextlib.AbstractContextManager):
        with result as graph:
            yield graph
    else:
        yield result
