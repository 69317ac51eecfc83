"""Authentication (pure ASGI, before routing) and authorization (around each route).

Authentication runs for every request except to public routes (probes, docs, metrics);
requests to unknown paths are authenticated too, so a caller without credentials learns
nothing about which routes exist. It leaves on the scope, for the layers inside it (rate
limits, audit, the routes):
- `scope["state"]["principal"]`: the Principal;
- `scope["state"]["auth_event"]`: `{"outcome": "success" | "failure" | "denied", "reason"}`.

Authorization wraps each route's ASGI app with the permission the route table
(`route_policy`) gives it, so the check runs after routing, with the route known.
"""

import logging
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison import serde
from garrison.auth.authenticators import Authenticator
from garrison.auth.roles import allows
from garrison.auth.route_policy import PUBLIC, Permission, classified_routes, permission_for
from garrison.domain.errors import AuthenticationError, GarrisonError, PermissionDeniedError

logger = logging.getLogger("garrison.auth")

_PUBLIC_PATHS = frozenset(path for (_, path), perm in classified_routes().items() if perm is PUBLIC)


async def _refuse(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]]
) -> None:
    body = serde.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthenticationMiddleware:
    """Authenticates with `app.state.authenticator`, which the app sets at start-up (the
    authenticator needs storage, opened after the middleware stack is built)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        body = _ReplayableBody(receive)
        try:
            authenticator: Authenticator = scope["app"].state.authenticator
            principal = await authenticator.authenticate(Request(scope, body.receive))
        except AuthenticationError as exc:
            state["auth_event"] = {"outcome": "failure", "reason": exc.detail}
            await _refuse(send, 401, exc.detail, [(b"www-authenticate", b"Bearer")])
            return
        except PermissionDeniedError as exc:  # a custom handler refused with a non-401
            state["auth_event"] = {"outcome": "failure", "reason": exc.detail}
            await _refuse(send, 403, exc.detail, [])
            return
        except GarrisonError as exc:  # e.g. storage unavailable while looking a key up
            state["auth_event"] = {"outcome": "failure", "reason": exc.detail}
            await _refuse(send, 503, "Authentication is temporarily unavailable", [])
            return
        state["principal"] = principal
        if principal.auth_kind != "none":  # nothing was proven in `none` mode; nothing to log
            state["auth_event"] = {"outcome": "success", "reason": principal.auth_kind}
        await self.app(scope, body.replay, send)


class _ReplayableBody:
    """Records the body messages an authenticator reads, and hands them to the route
    first: a custom `@auth.authenticate(body)` handler must not eat the request."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._read: list[Message] = []

    async def receive(self) -> Message:
        message = await self._receive()
        self._read.append(message)
        return message

    async def replay(self) -> Message:
        if self._read:
            return self._read.pop(0)
        return await self._receive()


class _Authorized:
    """One route's app, entered only by callers whose roles grant `permission`."""

    def __init__(self, app: ASGIApp, permission: Permission) -> None:
        self.app = app
        self.permission = permission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        principal: Any = state.get("principal")
        if principal is None or not allows(principal.roles, self.permission):
            state["auth_event"] = {"outcome": "denied", "reason": str(self.permission)}
            detail = (
                f"Forbidden: your role may not {self.permission.action} {self.permission.resource}"
            )
            await _refuse(send, 403, detail, [])
            return
        await self.app(scope, receive, send)


def guard_routes(routes: Iterable[BaseRoute]) -> None:
    """Wrap every route's app with its permission check; a route missing from the policy
    table stops start-up (UnclassifiedRouteError)."""
    for route in routes:
        if not isinstance(route, Route):
            continue
        permissions = {permission_for(method, route.path) for method in route.methods or ()}
        if len(permissions) > 1:
            raise ValueError(f"route {route.path} needs one permission for all its methods")
        permission = next(iter(permissions), PUBLIC)
        if permission is not PUBLIC:
            route.app = _Authorized(route.app, permission)


__all__ = ["AuthenticationMiddleware", "guard_routes"]
