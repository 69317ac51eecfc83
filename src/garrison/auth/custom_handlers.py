"""Authorization by a project's `@auth.on...` handlers, with LangGraph Server's semantics.

For each operation exactly one handler runs, the most specific registered:
(resource, action) → (resource, *) → (*, action) → the global `@auth.on`. It receives
`ctx` (user, permissions, resource, action) and the operation's payload, which it may
change (the service persists the change). It answers None/True (allow), False (403), or a
filter dict over the resource's metadata — `{"k": v}` or `{"k": {"$eq": v}}` (equality),
`{"k": {"$contains": v}}` (membership), `{"k": {"$contains": [v, w]}}` (subset), keys
AND-ed — which restricts the operation to matching rows. With no handler at all, every
operation is allowed.
"""

import logging
from collections.abc import Mapping
from typing import Any

from langgraph_sdk import Auth
from langgraph_sdk.auth.types import AuthContext

from garrison.domain.access import AccessFilter
from garrison.domain.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GarrisonError,
    NotFoundError,
    PermissionDeniedError,
)
from garrison.domain.principal import Principal
from garrison.services.authorization import Resource

logger = logging.getLogger("garrison.auth")

_ERRORS_BY_STATUS: dict[int, type[GarrisonError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


class HandlerAuthorizer:
    def __init__(self, auth: Auth) -> None:
        self._auth = auth

    def handler_for(self, resource: str, action: str) -> Any:
        handlers = self._auth._handlers
        for key in ((resource, action), (resource, "*"), ("*", action)):
            if key in handlers:
                return handlers[key][-1]
        return self._auth._global_handlers[-1] if self._auth._global_handlers else None

    async def authorize(
        self, principal: Principal, resource: Resource, action: str, value: dict[str, Any]
    ) -> AccessFilter | None:
        user = principal.user
        if principal.auth_kind != "custom" or user is None:
            # The server acting for itself (a cron's scheduled fire), not a caller.
            return None
        handler = self.handler_for(resource, action)
        if handler is None:
            return None
        ctx = AuthContext(
            permissions=list(user.permissions),
            user=user,
            resource=resource,
            action=action,  # type: ignore[arg-type]  # the services name only known actions
        )
        try:
            result = await handler(ctx, value)
        except Auth.exceptions.HTTPException as exc:
            error = _ERRORS_BY_STATUS.get(exc.status_code, PermissionDeniedError)
            raise error(str(exc.detail)) from None
        except Exception:
            logger.exception("the auth handler for %s.%s failed", resource, action)
            raise PermissionDeniedError("Forbidden") from None
        if result is None or result is True:
            return None
        if result is False:
            raise PermissionDeniedError(f"Forbidden: you may not {action} {resource}")
        if isinstance(result, Mapping):
            return access_filter(result)
        logger.error("the auth handler for %s.%s returned %r", resource, action, result)
        raise PermissionDeniedError("Forbidden")


def access_filter(filter_: Mapping[str, Any]) -> AccessFilter:
    """A LangGraph auth filter as containment patterns over metadata."""
    patterns: list[dict[str, Any]] = []
    for key, condition in filter_.items():
        if isinstance(condition, Mapping) and any(str(k).startswith("$") for k in condition):
            for operator, operand in condition.items():
                if operator == "$eq":
                    patterns.append({key: operand})
                elif operator == "$contains":
                    patterns.append({key: operand if isinstance(operand, list) else [operand]})
                else:
                    logger.error("auth filter operator %r is not supported", operator)
                    raise PermissionDeniedError("Forbidden")
        else:
            patterns.append({key: condition})
    return AccessFilter(metadata=tuple(patterns))


__all__ = ["HandlerAuthorizer", "access_filter"]
