"""Per-operation checks on threads, shared by the thread and run services (runs are
authorized through their thread, as in LangGraph: `threads.create_run`, `threads.read`…)."""

from typing import Any

from garrison.domain.access import AccessFilter
from garrison.domain.errors import NotFoundError
from garrison.domain.principal import Principal
from garrison.services.authorization import Authorizer
from garrison.storage import models
from garrison.storage.ports import ThreadRepository


class ThreadAccess:
    def __init__(self, threads: ThreadRepository, authorizer: Authorizer) -> None:
        self._threads = threads
        self._authorizer = authorizer

    async def decide(
        self, principal: Principal, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        """Ask the authorizer; `value` may come back changed (and should be used)."""
        return await self._authorizer.authorize(principal, "threads", action, value)

    async def thread(
        self, principal: Principal, action: str, thread_id: str, **fields: Any
    ) -> models.Thread:
        """The thread, when it exists and the caller may `action` it; a thread the filter
        hides is reported exactly like a missing one."""
        access = await self.decide(principal, action, {"thread_id": thread_id, **fields})
        thread = await self._threads.get(principal.tenant_id, thread_id)
        if thread is None or not admits(access, thread):
            raise NotFoundError(f"Thread {thread_id} not found")
        return thread

    async def check(self, principal: Principal, action: str, thread_id: str, **fields: Any) -> None:
        """Like `thread`, but without reading the row when nothing restricts the caller
        (the storage layer already scopes every query to the tenant)."""
        access = await self.decide(principal, action, {"thread_id": thread_id, **fields})
        if access is None:
            return
        thread = await self._threads.get(principal.tenant_id, thread_id)
        if thread is None or not admits(access, thread):
            raise NotFoundError(f"Thread {thread_id} not found")


def admits(
    access: AccessFilter | None, row: models.Thread | models.Assistant | models.Cron
) -> bool:
    return access is None or access.admits(row.metadata, row.owner)


__all__ = ["ThreadAccess", "admits"]
