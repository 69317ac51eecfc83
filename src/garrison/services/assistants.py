"""Assistants: versioned configurations of a graph, plus graph introspection."""

import uuid
from typing import Any

from langchain_core.runnables import RunnableConfig

from garrison.domain.access import AccessFilter
from garrison.domain.errors import (
    BadRequestError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from garrison.domain.ids import is_uuid, parse_uuid, system_assistant_id
from garrison.domain.principal import DEFAULT_TENANT, Principal
from garrison.runtime import introspection
from garrison.runtime.graphs import GraphRegistry
from garrison.schemas import assistants as wire
from garrison.schemas.common import Config
from garrison.services.authorization import AllowAll, Authorizer
from garrison.services.thread_access import admits
from garrison.storage import models
from garrison.storage.models import AssistantQuery, IfExists, Json, Page, SortOrder
from garrison.storage.ports import Storage

ASSISTANT_NOT_FOUND = "Thread or assistant not found."


def config_and_context(config: Json | None, context: Json | None) -> tuple[Json, Json]:
    """Keep `config.configurable` and `context` in step, as LangGraph Server does: either
    may be given, and each mirrors the other; both at once is ambiguous."""
    config = dict(config or {})
    configurable = config.get("configurable")
    if configurable and context:
        raise BadRequestError("Cannot specify both configurable and context. Prefer context.")
    if context:
        config["configurable"] = dict(context)
        return config, dict(context)
    return config, dict(configurable or {})


class AssistantService:
    def __init__(
        self, storage: Storage, registry: GraphRegistry, authorizer: Authorizer | None = None
    ) -> None:
        self._storage = storage
        self._registry = registry
        self._authorizer = authorizer or AllowAll()

    async def _decide(
        self, principal: Principal, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        return await self._authorizer.authorize(principal, "assistants", action, value)

    async def _visible(
        self, principal: Principal, assistant_id: str, action: str, *, served: bool = True
    ) -> models.Assistant:
        """The assistant, if it exists, serves a registered graph (when `served`) and the
        caller may `action` it; otherwise NotFoundError."""
        access = await self._decide(principal, action, {"assistant_id": assistant_id})
        assistant = await self._storage.assistants.get(principal.tenant_id, assistant_id)
        if (
            assistant is None
            or (served and not self._registry.has(assistant.graph_id))
            or not admits(access, assistant)
        ):
            raise NotFoundError(f"Assistant {assistant_id} not found")
        return assistant

    def _require_changeable(self, principal: Principal, assistant: models.Assistant) -> None:
        """A system assistant is shared by every tenant, so no tenant may change it for the
        others. The default tenant may: it is every caller when authentication is off or
        custom, where a single-tenant deployment keeps LangGraph Server's behaviour."""
        if assistant.tenant_id is None and principal.tenant_id != DEFAULT_TENANT:
            raise PermissionDeniedError(
                f"Assistant {assistant.assistant_id} is the system assistant of graph"
                f" {assistant.graph_id!r}, shared by every tenant: it cannot be changed or"
                " deleted by one. Create an assistant of your own for the graph instead."
            )

    def _require_graph(self, graph_id: str) -> None:
        if not self._registry.has(graph_id):
            known = ", ".join(self._registry.graph_ids)
            raise NotFoundError(f"Graph {graph_id!r} not found. Registered graphs: {known}")

    async def create(self, principal: Principal, body: wire.AssistantCreate) -> models.Assistant:
        self._require_graph(body.graph_id)
        assistant_id = (
            parse_uuid(body.assistant_id, "assistant_id") if body.assistant_id else _new_id()
        )
        config, context = config_and_context(_dump(body.config), body.context)
        request: Json = {
            "assistant_id": assistant_id,
            "graph_id": body.graph_id,
            "config": config,
            "context": context,
            "metadata": dict(body.metadata or {}),
            "if_exists": body.if_exists,
            "name": body.name or "Untitled",
        }
        access = await self._decide(principal, "create", request)
        if access is not None and body.assistant_id:
            existing = await self._storage.assistants.get(principal.tenant_id, assistant_id)
            if existing is not None and not admits(access, existing):
                raise ConflictError(f"Assistant {assistant_id} already exists")
        new = models.NewAssistant(
            assistant_id=assistant_id,
            graph_id=body.graph_id,
            name=request["name"],
            description=body.description,
            config=request["config"],
            context=request["context"],
            metadata=dict(request["metadata"] or {}),
        )
        return await self._storage.assistants.create(
            principal.tenant_id, principal.identity, new, IfExists(body.if_exists)
        )

    async def get(
        self, principal: Principal, assistant_id: str, action: str = "read"
    ) -> models.Assistant:
        return await self._visible(principal, parse_uuid(assistant_id, "assistant_id"), action)

    async def resolve(
        self, principal: Principal, assistant_id: str, *, for_run: bool = False
    ) -> models.Assistant:
        """An assistant by id, or a graph's system assistant by graph name (runs, crons).

        Runs need `read` on the assistant, except on a system assistant (every graph's
        default, which custom auth filters would otherwise hide from everyone)."""
        if not is_uuid(assistant_id):
            if not self._registry.has(assistant_id):
                known = ", ".join(self._registry.graph_ids)
                raise InvalidArgumentError(
                    f"Invalid assistant_id {assistant_id!r}: not a UUID nor a graph name."
                    f" Registered graphs: {known}"
                )
            assistant_id = system_assistant_id(assistant_id)
        assistant = await self._storage.assistants.get(principal.tenant_id, assistant_id.lower())
        if assistant is None or not self._registry.has(assistant.graph_id):
            raise NotFoundError(ASSISTANT_NOT_FOUND)
        if for_run and assistant.tenant_id is None:
            return assistant
        access = await self._decide(principal, "read", {"assistant_id": assistant.assistant_id})
        if not admits(access, assistant):
            raise NotFoundError(ASSISTANT_NOT_FOUND)
        return assistant

    async def update(
        self, principal: Principal, assistant_id: str, body: wire.AssistantPatch
    ) -> models.Assistant:
        assistant_id = parse_uuid(assistant_id, "assistant_id")
        request: Json = {
            "assistant_id": assistant_id,
            "graph_id": body.graph_id,
            "config": _dump(body.config),
            "context": body.context,
            "metadata": body.metadata,
            "name": body.name,
        }
        access = await self._decide(principal, "update", request)
        current = await self._storage.assistants.get(principal.tenant_id, assistant_id)
        if current is None or not self._registry.has(current.graph_id):
            raise NotFoundError(f"Assistant {assistant_id} not found")
        if not admits(access, current):
            raise NotFoundError(f"Assistant {assistant_id} not found")
        self._require_changeable(principal, current)
        if request["graph_id"] is not None:
            self._require_graph(request["graph_id"])
        config: Json | None = None
        context: Json | None = None
        if request["config"] is not None:
            config, context = config_and_context(request["config"], request["context"])
        elif request["context"] is not None:
            # Only the context changes: the current config keeps everything else, and its
            # `configurable` follows the new context (the two mirror each other).
            context = dict(request["context"])
            config = {**current.config, "configurable": dict(context)}
        patch = models.AssistantPatch(
            graph_id=request["graph_id"],
            name=request["name"],
            description=body.description,
            config=config,
            context=context,
            metadata=request["metadata"],
        )
        return await self._storage.assistants.update(
            principal.tenant_id, current.assistant_id, patch
        )

    async def delete(self, principal: Principal, assistant_id: str) -> None:
        assistant_id = parse_uuid(assistant_id, "assistant_id")
        # An assistant whose graph left the project can still be deleted.
        assistant = await self._visible(principal, assistant_id, "delete", served=False)
        self._require_changeable(principal, assistant)
        if not await self._storage.assistants.delete(principal.tenant_id, assistant_id):
            raise NotFoundError(f"Assistant {assistant_id} not found")

    async def search(
        self, principal: Principal, body: wire.AssistantSearch
    ) -> tuple[list[models.Assistant], bool]:
        request: Json = {
            "graph_id": body.graph_id,
            "metadata": body.metadata,
            "limit": body.limit,
            "offset": body.offset,
        }
        access = await self._decide(principal, "search", request)
        query = AssistantQuery(
            metadata=request["metadata"],
            graph_id=request["graph_id"],
            name=body.name,
            sort_by=body.sort_by or "created_at",
            sort_order=SortOrder(body.sort_order or "desc"),
            page=Page(body.limit, body.offset),
            access=access,
        )
        return await self._storage.assistants.search(principal.tenant_id, query)

    async def count(self, principal: Principal, body: wire.AssistantCount) -> int:
        request: Json = {"graph_id": body.graph_id, "metadata": body.metadata}
        access = await self._decide(principal, "search", request)
        query = AssistantQuery(
            metadata=request["metadata"],
            graph_id=request["graph_id"],
            name=body.name,
            access=access,
        )
        return await self._storage.assistants.count(principal.tenant_id, query)

    async def versions(
        self, principal: Principal, assistant_id: str, body: wire.AssistantVersionsQuery
    ) -> list[models.Assistant]:
        await self.get(principal, assistant_id)
        versions = await self._storage.assistants.versions(
            principal.tenant_id,
            parse_uuid(assistant_id, "assistant_id"),
            body.metadata,
            Page(body.limit, body.offset),
        )
        if not versions:
            raise NotFoundError(f"Assistant {assistant_id} not found")
        return versions

    async def set_latest(
        self, principal: Principal, assistant_id: str, version: int
    ) -> models.Assistant:
        self._require_changeable(principal, await self.get(principal, assistant_id, "update"))
        return await self._storage.assistants.set_latest(
            principal.tenant_id, parse_uuid(assistant_id, "assistant_id"), version
        )

    # Introspection -------------------------------------------------------------------
    async def _for_graph(self, principal: Principal, assistant_id: str) -> models.Assistant:
        # Drawing also accepts a graph name in place of the id.
        if not is_uuid(assistant_id) and self._registry.has(assistant_id):
            return await self.resolve(principal, assistant_id)
        return await self.get(principal, assistant_id)

    async def draw(self, principal: Principal, assistant_id: str, xray: bool | int) -> Json:
        assistant = await self._for_graph(principal, assistant_id)
        async with self._registry.open(assistant.graph_id, _config(assistant)) as graph:
            try:
                return introspection.draw(graph, xray)
            except Exception as exc:
                raise InvalidArgumentError(f"Graph cannot be drawn: {exc}") from exc

    async def schemas(self, principal: Principal, assistant_id: str) -> Json:
        assistant = await self.get(principal, assistant_id)
        async with self._registry.open(assistant.graph_id, _config(assistant)) as graph:
            return {"graph_id": assistant.graph_id, **introspection.schemas(graph)}

    async def subgraphs(
        self, principal: Principal, assistant_id: str, namespace: str | None, recurse: bool
    ) -> Json:
        assistant = await self.get(principal, assistant_id)
        async with self._registry.open(assistant.graph_id, _config(assistant)) as graph:
            return introspection.subgraph_schemas(graph, namespace, recurse)


def _config(assistant: models.Assistant) -> RunnableConfig:
    config: Any = {**assistant.config}
    config["configurable"] = {
        **assistant.config.get("configurable", {}),
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
    }
    return config  # type: ignore[no-any-return]


def _dump(config: Config | None) -> Json | None:
    return config.model_dump(exclude_none=True) if config is not None else None


def _new_id() -> str:
    return str(uuid.uuid4())
