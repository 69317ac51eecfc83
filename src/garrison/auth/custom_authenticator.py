"""Authentication by a project's own `langgraph_sdk.Auth` handler (`auth.path`).

The handler declares which request parts it wants by parameter name — `request`, `body`,
`path`, `method`, `path_params`, `query_params`, `headers` (bytes to bytes, lower-case
names), `authorization`, `scope` — and returns the user: a string identity, a dict with
`identity` (and optionally `display_name`, `is_authenticated`, `permissions`, extras), or
an object with those attributes. Raising `Auth.exceptions.HTTPException` refuses: 401 stays
401, anything else is a 403, as on LangGraph Server.
"""

import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph_sdk import Auth
from starlette.requests import Request
from starlette.routing import Match

from garrison.domain.auth_user import AuthUser
from garrison.domain.errors import AuthenticationError, PermissionDeniedError
from garrison.domain.principal import DEFAULT_TENANT, Principal

logger = logging.getLogger("garrison.auth")

_USER_FIELDS = ("identity", "display_name", "is_authenticated", "permissions")
_KNOWN_PARAMETERS = frozenset(
    {
        "request",
        "body",
        "path",
        "method",
        "path_params",
        "query_params",
        "headers",
        "authorization",
        "scope",
        "scopes",
    }
)


@dataclass(frozen=True, slots=True)
class AuthCache:
    """`auth.cache` in the project file: successful authentications are reused for
    `ttl_seconds` by requests carrying the same values of the `cache_keys` headers."""

    cache_keys: tuple[str, ...]
    ttl_seconds: float = 60.0
    max_size: int = 1000

    @classmethod
    def from_project(cls, spec: Any) -> "AuthCache | None":
        if spec is None:
            return None
        if not isinstance(spec, Mapping):
            raise ValueError("auth.cache must be an object")
        keys = spec.get("cache_keys")
        if not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError("auth.cache.cache_keys must be a non-empty list of header names")
        ttl = float(spec.get("ttl_seconds", 60.0))
        size = int(spec.get("max_size", 1000))
        if ttl <= 0 or size < 1:
            raise ValueError("auth.cache needs ttl_seconds > 0 and max_size >= 1")
        return cls(tuple(k.lower() for k in keys), ttl, size)


class CustomAuthenticator:
    def __init__(self, auth: Auth, cache: AuthCache | None = None) -> None:
        self._cache = cache
        self._cached: OrderedDict[tuple[str | None, ...], tuple[float, Principal]] = OrderedDict()
        handler = auth._authenticate_handler
        if handler is None:
            raise ValueError("the auth object has no @auth.authenticate handler")
        self._handler: Callable[..., Any] = handler
        self._parameters = list(inspect.signature(handler).parameters)
        unknown = [name for name in self._parameters if name not in _KNOWN_PARAMETERS]
        if unknown:
            raise ValueError(
                f"@auth.authenticate handler asks for unknown parameters {unknown}; "
                f"known: {sorted(_KNOWN_PARAMETERS)}"
            )

    async def authenticate(self, request: Request) -> Principal:
        if self._cache is None:
            return await self._authenticate(request)
        key = tuple(request.headers.get(name) for name in self._cache.cache_keys)
        now = time.monotonic()
        hit = self._cached.get(key)
        if hit is not None and hit[0] > now:
            self._cached.move_to_end(key)
            return hit[1]
        principal = await self._authenticate(request)  # failures are never cached
        self._cached[key] = (now + self._cache.ttl_seconds, principal)
        self._cached.move_to_end(key)
        while len(self._cached) > self._cache.max_size:
            self._cached.popitem(last=False)
        return principal

    async def _authenticate(self, request: Request) -> Principal:
        arguments = {name: await _argument(name, request) for name in self._parameters}
        try:
            result = await self._handler(**arguments)
        except Auth.exceptions.HTTPException as exc:
            if exc.status_code == 401:
                raise AuthenticationError(str(exc.detail)) from None
            raise PermissionDeniedError(str(exc.detail)) from None
        except Exception:
            # A broken handler must not let anyone in, nor show its traceback to callers.
            logger.exception("the @auth.authenticate handler failed")
            raise PermissionDeniedError("Forbidden") from None
        user = _as_user(result)
        return Principal(
            tenant_id=DEFAULT_TENANT,
            identity=user.identity,
            permissions=tuple(user.permissions),
            # Route permissions are the handlers' business in custom auth: every route is
            # open at the role level and @auth.on handlers decide per operation.
            roles=frozenset({"admin"}),
            auth_kind="custom",
            credential_id=f"user:{user.identity}",
            user=user,
        )


async def _argument(name: str, request: Request) -> Any:
    if name == "request":
        return request
    if name == "body":
        return await request.body()
    if name == "path":
        return request.url.path
    if name == "method":
        return request.method
    if name == "path_params":
        return _path_params(request)
    if name == "query_params":
        return dict(request.query_params)
    if name == "headers":
        return {k.lower(): v for k, v in request.scope["headers"]}
    if name == "authorization":
        return request.headers.get("authorization")
    return request.scope  # scope / scopes


def _path_params(request: Request) -> dict[str, str]:
    """Authentication runs before routing; find the route the request is headed for."""
    router = getattr(request.scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, child = route.matches(request.scope)
        if match is Match.FULL:
            return {k: str(v) for k, v in child.get("path_params", {}).items()}
    return {}


def _as_user(result: Any) -> AuthUser:
    if isinstance(result, str):
        fields: Mapping[str, Any] = {"identity": result}
    elif isinstance(result, Mapping):
        fields = result
    else:
        fields = {name: getattr(result, name) for name in _USER_FIELDS if hasattr(result, name)}
    try:
        return AuthUser(fields)
    except ValueError as exc:
        logger.error("the @auth.authenticate handler returned an unusable user: %s", exc)
        raise PermissionDeniedError("Forbidden") from None


__all__ = ["AuthCache", "CustomAuthenticator"]
