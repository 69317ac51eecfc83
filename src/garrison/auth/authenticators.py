"""Authenticators: turn a request's headers into a Principal, or refuse with 401.

Credentials come from headers only, never from the query string (URLs end up in logs,
browser history and proxies). API keys arrive as `x-api-key` (what `langgraph-sdk` sends)
or `Authorization: Bearer gk_...`; JWTs as `Authorization: Bearer <token>`.
"""

from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request

from garrison.auth.api_keys import parse_key, secret_matches
from garrison.domain.clock import utcnow
from garrison.domain.errors import AuthenticationError
from garrison.domain.principal import DEFAULT_TENANT, Principal
from garrison.storage.ports import ApiKeyRepository

# One answer for every bad key, so a caller cannot tell an unknown key from a revoked one.
_BAD_KEY = "Invalid API key"


class Authenticator(Protocol):
    async def authenticate(self, request: Request) -> Principal:
        """The caller, or AuthenticationError (401) / PermissionDeniedError (403). Reading
        the body is allowed: the middleware replays it to the route."""
        ...


def bearer_token(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class AnonymousAuthenticator:
    """`auth.mode = none`: everyone is the same caller of the default tenant."""

    def __init__(self, role: str) -> None:
        self._principal = Principal(tenant_id=DEFAULT_TENANT, roles=frozenset({role}))

    async def authenticate(self, request: Request) -> Principal:
        return self._principal


class ApiKeyAuthenticator:
    """Looks every key up in storage: a revoked key stops working on the next request."""

    def __init__(self, keys: ApiKeyRepository) -> None:
        self._keys = keys

    async def authenticate(self, request: Request) -> Principal:
        headers = request.headers
        text = headers.get("x-api-key") or bearer_token(headers)
        if not text:
            raise AuthenticationError("Missing API key (send it in the x-api-key header)")
        parsed = parse_key(text)
        if parsed is None:
            raise AuthenticationError(_BAD_KEY)
        key_id, secret = parsed
        key = await self._keys.get(key_id)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise AuthenticationError(_BAD_KEY)
        if not key.usable_at(utcnow()):
            raise AuthenticationError(_BAD_KEY)
        return Principal(
            tenant_id=key.tenant_id,
            identity=f"key:{key.key_id}",
            roles=frozenset({key.role}),
            auth_kind="api_key",
            credential_id=key.key_id,
        )


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


class JwtAuthenticator:
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request.headers)
        if token is None:
            raise AuthenticationError("Missing bearer token")
        return await self._verifier.verify(token)


__all__ = [
    "AnonymousAuthenticator",
    "ApiKeyAuthenticator",
    "Authenticator",
    "JwtAuthenticator",
    "TokenVerifier",
    "bearer_token",
]
