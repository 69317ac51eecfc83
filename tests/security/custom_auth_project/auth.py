"""A project's own LangGraph auth, written as LangGraph's documentation teaches it:
bearer tokens, resource ownership through metadata, per-user store namespaces."""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, dict[str, Any]] = {
    "token-alice": {
        "identity": "alice",
        "display_name": "Alice Liddell",
        "permissions": ["assistants:write"],
        "org": "wonderland",
    },
    "token-bob": {"identity": "bob", "permissions": []},
    "token-carol": {"identity": "carol", "permissions": []},
}


@auth.authenticate
async def authenticate(
    authorization: str | None, method: str, path: str, body: bytes, headers: dict[bytes, bytes]
) -> dict[str, Any]:
    # `body` and `headers` are asked for to prove the server hands them over (and that the
    # route still receives the body afterwards).
    assert isinstance(body, bytes) and isinstance(headers, dict)
    if headers.get(b"x-banned") == b"yes":
        raise Auth.exceptions.HTTPException(status_code=403, detail="Banned caller")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid or missing token")
    return USERS[token]


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    """Resource-level ownership: stamp the owner on what is created, see only one's own."""
    metadata = value.setdefault("metadata", {})
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.delete
async def carol_never_deletes(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if ctx.user.identity == "carol":
        return False
    return {"owner": ctx.user.identity}


@auth.on.assistants.create
async def writers_create_assistants(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "assistants:write" not in ctx.permissions:
        raise Auth.exceptions.HTTPException(status_code=403, detail="Assistants are read-only")
    value["metadata"]["owner"] = ctx.user.identity
    return None


@auth.on.crons
async def cron_members(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    """Membership filter: a cron is visible to the users listed in its `members`."""
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        metadata["members"] = [ctx.user.identity, "auditor"]
    return {"members": {"$contains": ctx.user.identity}}


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    namespace = tuple(value.get("namespace") or ())
    value["namespace"] = (ctx.user.identity, *namespace)
