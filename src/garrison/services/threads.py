"""Threads: CRUD, search, copy, prune, and the state stored in their checkpoints."""

import re
import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError
from langgraph.types import StateUpdate

from garrison import serde
from garrison.broker.ports import Broker
from garrison.config.project import ThreadTTLConfig
from garrison.domain.errors import BadRequestError, ConflictError, NotFoundError
from garrison.domain.ids import parse_uuid
from garrison.domain.principal import Principal
from garrison.domain.threads import ThreadStatus
from garrison.runtime.executor import thread_state_of
from garrison.runtime.graphs import GraphRegistry
from garrison.schemas import threads as wire
from garrison.schemas.common import Checkpoint
from garrison.services.runs import RunService
from garrison.services.state_view import empty_state, snapshot_view
from garrison.services.thread_access import ThreadAccess, admits
from garrison.storage import models
from garrison.storage.models import IfExists, Json, Page, SortOrder, ThreadQuery
from garrison.storage.ports import Storage, TTLSpec


class ThreadService:
    def __init__(
        self,
        storage: Storage,
        broker: Broker,
        registry: GraphRegistry,
        runs: RunService,
        default_ttl: ThreadTTLConfig | None,
        access: ThreadAccess,
    ) -> None:
        self._storage = storage
        self._access = access
        self._broker = broker
        self._registry = registry
        self._runs = runs
        self._default_ttl = default_ttl

    # CRUD ------------------------------------------------------------------------------
    async def create(self, principal: Principal, body: wire.ThreadCreate) -> models.Thread:
        thread_id = parse_uuid(body.thread_id, "thread_id") if body.thread_id else str(uuid.uuid4())
        metadata = dict(body.metadata or {})
        if body.graph_id:
            metadata["graph_id"] = body.graph_id
        if body.supersteps and not self._registry.has(metadata.get("graph_id", "")):
            raise BadRequestError("supersteps need a registered graph_id in the thread metadata")
        request: Json = {
            "thread_id": thread_id,
            "metadata": metadata,
            "if_exists": body.if_exists,
            "ttl": body.ttl.model_dump() if body.ttl else None,
        }
        access = await self._access.decide(principal, "create", request)
        existing = (
            await self._storage.threads.get(principal.tenant_id, thread_id)
            if body.thread_id is not None
            else None
        )
        if existing is not None and not admits(access, existing):
            # Someone else's thread: the id is taken, and that is all the caller learns.
            raise ConflictError(f"Thread {thread_id} already exists")
        existed = existing is not None
        thread = await self._storage.threads.create(
            principal.tenant_id,
            principal.identity,
            thread_id,
            dict(request["metadata"] or {}),
            self._ttl(body.ttl),
            IfExists(body.if_exists),
        )
        if body.supersteps and not existed:
            try:
                await self._apply_supersteps(principal, thread, body.supersteps)
            except BaseException:
                # The request failed as a whole: leave no half-made thread behind.
                await self._storage.threads.delete(principal.tenant_id, thread_id)
                await self._storage.checkpointer.adelete_thread(thread_id)
                raise
            thread = await self.get(principal, thread_id)
        return thread

    def _ttl(self, ttl: wire.ThreadTTL | None) -> TTLSpec | None:
        if ttl is not None:
            return TTLSpec(strategy=ttl.strategy, minutes=ttl.ttl)
        if self._default_ttl is not None and self._default_ttl.default_ttl:
            return TTLSpec(self._default_ttl.strategy, self._default_ttl.default_ttl)
        return None

    async def get(
        self, principal: Principal, thread_id: str, action: str = "read"
    ) -> models.Thread:
        """The thread, if the caller may `action` it (else NotFoundError)."""
        return await self._access.thread(
            principal, action, parse_uuid(thread_id, "thread_id"), run_id=None
        )

    async def update(
        self, principal: Principal, thread_id: str, body: wire.ThreadPatch
    ) -> models.Thread:
        thread_id = parse_uuid(thread_id, "thread_id")
        request: Json = {"thread_id": thread_id, "metadata": body.metadata, "action": None}
        access = await self._access.decide(principal, "update", request)
        if access is not None:
            current = await self._storage.threads.get(principal.tenant_id, thread_id)
            if current is None or not admits(access, current):
                raise NotFoundError(f"Thread {thread_id} not found")
        return await self._storage.threads.update(
            principal.tenant_id,
            thread_id,
            request["metadata"],
            TTLSpec(body.ttl.strategy, body.ttl.ttl) if body.ttl else None,
        )

    async def delete(self, principal: Principal, thread_id: str) -> None:
        thread = await self.get(principal, thread_id, "delete")
        await self._runs.cancel_thread_runs(principal, thread.thread_id)
        await self._storage.threads.delete(principal.tenant_id, thread.thread_id)
        await self._storage.checkpointer.adelete_thread(thread.thread_id)

    async def delete_for_assistant(self, principal: Principal, assistant_id: str) -> None:
        """Delete the threads whose metadata names `assistant_id`."""
        thread_ids = await self._storage.threads.ids_with_metadata(
            principal.tenant_id, {"assistant_id": assistant_id}
        )
        for thread_id in thread_ids:
            await self.delete(principal, thread_id)

    async def search(
        self, principal: Principal, body: wire.ThreadSearch
    ) -> tuple[list[models.Thread], bool]:
        ids = [parse_uuid(i, "thread id") for i in body.ids] if body.ids is not None else None
        request: Json = {
            "metadata": body.metadata,
            "values": body.values,
            "status": body.status,
            "limit": body.limit,
            "offset": body.offset,
            "ids": ids,
            "thread_id": None,
        }
        access = await self._access.decide(principal, "search", request)
        query = ThreadQuery(
            metadata=request["metadata"],
            values=request["values"],
            ids=ids,
            status=ThreadStatus(body.status) if body.status else None,
            sort_by=body.sort_by or "updated_at",
            sort_order=SortOrder(body.sort_order or "desc"),
            page=Page(body.limit, body.offset),
            access=access,
        )
        return await self._storage.threads.search(principal.tenant_id, query)

    async def count(self, principal: Principal, body: wire.ThreadCount) -> int:
        request: Json = {"metadata": body.metadata, "values": body.values, "status": body.status}
        access = await self._access.decide(principal, "search", request)
        query = ThreadQuery(
            metadata=request["metadata"],
            values=request["values"],
            status=ThreadStatus(body.status) if body.status else None,
            access=access,
        )
        return await self._storage.threads.count(principal.tenant_id, query)

    async def copy(self, principal: Principal, thread_id: str) -> models.Thread:
        source_id = parse_uuid(thread_id, "thread_id")
        try:
            await self._access.thread(principal, "read", source_id, run_id=None)
        except NotFoundError:
            # LangGraph Server answers a copy of an unknown thread with 409, not 404.
            raise ConflictError(f"Thread {thread_id} not found; nothing to copy") from None
        target_id = str(uuid.uuid4())
        # The copy is a new thread: the caller must be allowed to create one.
        await self._access.decide(principal, "create", {"thread_id": target_id, "metadata": {}})
        copied = await self._storage.threads.copy(
            principal.tenant_id, principal.identity, source_id, target_id
        )
        await self._storage.checkpointer.acopy_thread(source_id, target_id)
        return copied

    async def prune(self, principal: Principal, body: wire.ThreadPrune) -> int:
        pruned = 0
        for raw_id in body.thread_ids:
            thread_id = parse_uuid(raw_id, "thread id")
            try:
                await self._access.thread(principal, "delete", thread_id, run_id=None)
            except NotFoundError:
                continue
            if body.strategy == "delete":
                await self.delete(principal, thread_id)
            else:
                await self._storage.checkpointer.aprune([thread_id], strategy="keep_latest")
            pruned += 1
        return pruned

    # State -----------------------------------------------------------------------------
    def _graph_of(self, thread: models.Thread) -> str | None:
        graph_id = thread.metadata.get("graph_id")
        return graph_id if isinstance(graph_id, str) and self._registry.has(graph_id) else None

    def _config(
        self, thread: models.Thread, checkpoint: Checkpoint | None = None
    ) -> RunnableConfig:
        configurable: Json = {
            **thread.config.get("configurable", {}),
            "thread_id": thread.thread_id,
        }
        configurable["graph_id"] = thread.metadata.get("graph_id")
        if checkpoint is not None:
            fields = checkpoint.model_dump(exclude_none=True)
            fields.pop("thread_id", None)
            configurable.update(fields)
        return {"configurable": configurable}

    async def get_state(
        self,
        principal: Principal,
        thread_id: str,
        *,
        subgraphs: bool = False,
        checkpoint: Checkpoint | None = None,
    ) -> Json:
        thread = await self.get(principal, thread_id)
        wanted = None
        if checkpoint is not None and checkpoint.checkpoint_id is not None:
            wanted = checkpoint.checkpoint_id = parse_uuid(
                checkpoint.checkpoint_id, "checkpoint_id"
            )
        graph_id = self._graph_of(thread)
        if graph_id is None:
            if wanted is not None:  # a thread no run touched has no checkpoints at all
                raise NotFoundError(f"Checkpoint {wanted} not found")
            return empty_state(thread.thread_id)
        config = self._config(thread, checkpoint)
        async with self._registry.open(graph_id, config) as graph:
            snapshot = await graph.aget_state(config, subgraphs=subgraphs)
        if wanted is not None and snapshot.created_at is None:
            raise NotFoundError(f"Checkpoint {wanted} not found")
        return snapshot_view(snapshot)

    async def update_state(
        self, principal: Principal, thread_id: str, body: wire.StateUpdateRequest
    ) -> Json:
        thread = await self.get(principal, thread_id, "update")
        if thread.status is ThreadStatus.BUSY:
            raise ConflictError(f"Thread {thread_id} is busy; wait for its runs to finish")
        graph_id = self._graph_of(thread)
        if graph_id is None:
            raise BadRequestError(f"Thread {thread_id} has no graph yet; run it once first")
        checkpoint = body.checkpoint
        if body.checkpoint_id is not None:
            checkpoint = Checkpoint(checkpoint_id=body.checkpoint_id)
        if checkpoint is not None and checkpoint.checkpoint_id is not None:
            checkpoint.checkpoint_id = parse_uuid(checkpoint.checkpoint_id, "checkpoint_id")
        config = self._config(thread, checkpoint)
        # Forking from a checkpoint the thread does not have would silently start its state
        # over from nothing.
        if (
            checkpoint is not None
            and checkpoint.checkpoint_id is not None
            and await self._storage.checkpointer.aget_tuple(config) is None
        ):
            raise NotFoundError(f"Checkpoint {checkpoint.checkpoint_id} not found")
        async with self._registry.open(graph_id, config) as graph:
            try:
                written = await graph.aupdate_state(config, body.values, as_node=body.as_node)
            except (InvalidUpdateError, ValueError, KeyError) as exc:
                raise BadRequestError(f"Cannot update state: {exc}") from exc
            snapshot = await graph.aget_state({"configurable": {"thread_id": thread.thread_id}})
        await self._storage.threads.record_state(
            principal.tenant_id, thread.thread_id, thread_state_of(snapshot)
        )
        await self._broker.publish_thread_event(
            thread.thread_id,
            "state_update",
            serde.dumps({"state": snapshot_view(snapshot), "thread_id": thread.thread_id}),
        )
        checkpoint_view = dict(written["configurable"])
        return {
            "checkpoint": checkpoint_view,
            "configurable": checkpoint_view,
            "checkpoint_id": checkpoint_view.get("checkpoint_id"),
        }

    async def history(
        self,
        principal: Principal,
        thread_id: str,
        *,
        limit: int,
        before: str | Checkpoint | None,
        metadata: Json | None,
        checkpoint: Checkpoint | None,
    ) -> list[Json]:
        thread = await self.get(principal, thread_id)
        graph_id = self._graph_of(thread)
        if graph_id is None:
            return []
        config = self._config(thread, checkpoint)
        before_config: RunnableConfig | None = None
        if isinstance(before, str):
            before_config = {"configurable": {"checkpoint_id": parse_uuid(before, "before")}}
        elif before is not None:
            before_config = {"configurable": before.model_dump(exclude_none=True)}
        async with self._registry.open(graph_id, config) as graph:
            return [
                snapshot_view(snapshot)
                async for snapshot in graph.aget_state_history(
                    config, filter=metadata, before=before_config, limit=limit
                )
            ]

    async def _apply_supersteps(
        self, principal: Principal, thread: models.Thread, supersteps: list[wire.Superstep]
    ) -> None:
        graph_id = thread.metadata["graph_id"]
        config = self._config(thread)
        steps = [[StateUpdate(_update_values(u), u.as_node) for u in s.updates] for s in supersteps]
        async with self._registry.open(graph_id, config) as graph:
            try:
                await graph.abulk_update_state(config, steps)
            except (InvalidUpdateError, ValueError, KeyError) as exc:
                raise BadRequestError(f"Cannot apply supersteps: {exc}") from exc
            snapshot = await graph.aget_state(config)
        await self._storage.threads.record_state(
            principal.tenant_id, thread.thread_id, thread_state_of(snapshot)
        )


def _update_values(update: wire.StateUpdate) -> Any:
    """A superstep update's values; a command may only carry an `update`."""
    if not update.command:
        return update.values
    if set(update.command) - {"update"}:
        raise BadRequestError("supersteps support only commands with an 'update'")
    return update.command.get("update")


_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")


def extract_path(thread: Json, path: str) -> Any:
    """Resolve `values.messages[-1].content`-style paths against a thread view; None when a
    step is missing."""
    current: Any = thread
    for match in _PATH_TOKEN.finditer(path):
        key, index = match.groups()
        try:
            current = current[int(index)] if index is not None else current[key]
        except (KeyError, IndexError, TypeError):
            return None
    return current
