"""The authorization port services ask before touching a resource.

Route-level permissions (roles) are checked in the API layer before a service runs; this
port is the finer, per-operation decision LangGraph's custom auth handlers make (and the
`user` role's ownership rule): allow, deny, or allow on the rows a filter admits. Services
call it with the operation's payload, which the authorizer may change (a handler that
stamps `metadata.owner` on create), and persist what it leaves there.
"""

from typing import Any, Literal, Protocol

from garrison.domain.access import AccessFilter
from garrison.domain.principal import Principal

Resource = Literal["threads", "assistants", "crons", "store"]


class Authorizer(Protocol):
    async def authorize(
        self, principal: Principal, resource: Resource, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        """None: allowed on every row; a filter: allowed on the rows it admits. Raises
        PermissionDeniedError (or another GarrisonError a handler chose) to refuse."""
        ...


class AllowAll:
    """No per-operation rules: the route permissions already decided."""

    async def authorize(
        self, principal: Principal, resource: Resource, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        return None


__all__ = ["AllowAll", "Authorizer", "Resource"]
