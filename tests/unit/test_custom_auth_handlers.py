"""Custom auth handlers in isolation: which handler runs, what its answers mean, and how
filters translate to the containment patterns storage applies."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth
from starlette.requests import Request

from garrison.auth.custom_authenticator import AuthCache, CustomAuthenticator
from garrison.auth.custom_handlers import HandlerAuthorizer, access_filter
from garrison.auth.setup import build_access_control
from garrison.config.project import parse_project
from garrison.config.settings import Settings
from garrison.domain.access import AccessFilter
from garrison.domain.auth_user import AuthUser
from garrison.domain.errors import (
    AuthenticationError,
    ConflictError,
    InvalidArgumentError,
    PermissionDeniedError,
)
from garrison.domain.principal import Principal

ALICE = Principal(
    tenant_id="default",
    identity="alice",
    auth_kind="custom",
    user=AuthUser({"identity": "alice", "permissions": ["p1"]}),
)


def decide(auth: Auth, resource: str, action: str, principal: Principal = ALICE) -> Any:
    value: dict[str, Any] = {"metadata": {}}
    result = asyncio.run(
        HandlerAuthorizer(auth).authorize(principal, resource, action, value)  # type: ignore[arg-type]
    )
    return result, value


def tagging_auth(*registrations: tuple[str | None, str | None]) -> Auth:
    """An Auth whose handlers each stamp which registration answered."""
    auth = Auth()
    for resource, action in registrations:
        label = f"{resource or '*'}.{action or '*'}"

        async def handler(ctx: Any, value: Any, label: str = label) -> None:
            value["metadata"]["by"] = label

        if resource is None and action is None:
            auth.on(handler)
        else:
            auth.on(
                resources=[resource] if resource else None,  # type: ignore[arg-type]
                actions=[action] if action else None,  # type: ignore[arg-type]
            )(handler)
    return auth


@pytest.mark.parametrize(
    ("registered", "asked", "answered_by"),
    [
        ([(None, None)], ("threads", "read"), "*.*"),
        ([(None, None), (None, "read")], ("threads", "read"), "*.read"),
        ([(None, "read"), ("threads", None)], ("threads", "read"), "threads.*"),
        ([("threads", None), ("threads", "read")], ("threads", "read"), "threads.read"),
        ([("threads", "read"), (None, None)], ("threads", "create"), "*.*"),
        ([("assistants", None)], ("threads", "read"), None),
    ],
)
def test_the_most_specific_handler_answers(
    registered: list[tuple[str | None, str | None]],
    asked: tuple[str, str],
    answered_by: str | None,
) -> None:
    _, value = decide(tagging_auth(*registered), *asked)
    assert value["metadata"].get("by") == answered_by


def answering(answer: Any) -> Auth:
    auth = Auth()

    @auth.on
    async def handler(ctx: Any, value: Any) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return auth


def test_answers_allow_deny_or_filter() -> None:
    assert decide(answering(None), "threads", "read")[0] is None
    assert decide(answering(True), "threads", "read")[0] is None
    with pytest.raises(PermissionDeniedError):
        decide(answering(False), "threads", "read")
    assert decide(answering({"owner": "alice"}), "threads", "read")[0] == AccessFilter(
        metadata=({"owner": "alice"},)
    )


def test_handler_exceptions_keep_their_status_and_bugs_deny() -> None:
    with pytest.raises(ConflictError, match="taken"):
        decide(answering(Auth.exceptions.HTTPException(409, "taken")), "threads", "create")
    with pytest.raises(PermissionDeniedError):
        decide(answering(RuntimeError("bug in the handler")), "threads", "read")


def test_the_server_acting_for_itself_is_not_asked() -> None:
    cron_fire = Principal(tenant_id="default", identity="alice")  # no custom user
    assert decide(answering(False), "threads", "create_run", cron_fire)[0] is None


@pytest.mark.parametrize(
    ("langgraph_filter", "metadata", "admitted"),
    [
        ({"owner": "a"}, {"owner": "a"}, True),
        ({"owner": "a"}, {"owner": "b"}, False),
        ({"owner": "a"}, {"owner": ["a"]}, False),  # exact, not membership
        ({"owner": "a"}, {}, False),
        ({"owner": {"$eq": "a"}}, {"owner": "a"}, True),
        ({"members": {"$contains": "a"}}, {"members": ["b", "a"]}, True),
        ({"members": {"$contains": "a"}}, {"members": ["b"]}, False),
        ({"members": {"$contains": "a"}}, {"members": "a"}, False),
        ({"members": {"$contains": ["a", "b"]}}, {"members": ["c", "b", "a"]}, True),
        ({"members": {"$contains": ["a", "b"]}}, {"members": ["a"]}, False),
        ({"owner": "a", "org": "x"}, {"owner": "a", "org": "x"}, True),
        ({"owner": "a", "org": "x"}, {"owner": "a", "org": "y"}, False),
    ],
)
def test_filters_match_like_langgraph_server(
    langgraph_filter: dict[str, Any], metadata: dict[str, Any], admitted: bool
) -> None:
    assert access_filter(langgraph_filter).admits(metadata, None) is admitted


def test_unknown_filter_operators_deny() -> None:
    with pytest.raises(PermissionDeniedError):
        access_filter({"owner": {"$regex": ".*"}})


def test_auth_user_reads_both_ways() -> None:
    user = AuthUser({"identity": "alice", "org": "acme", "permissions": ("a", "b")})
    assert user.identity == user["identity"] == "alice"
    assert user.display_name == "alice" and user.is_authenticated
    assert user.permissions == ["a", "b"] and user.org == "acme"
    assert AuthUser(user.to_dict()) == user
    for bad in ({}, {"identity": ""}, {"identity": "x", "permissions": "admin"}):
        with pytest.raises(ValueError):
            AuthUser(bad)


def test_a_broken_auth_path_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "auth.py").write_text(
        "auth = object()\nno_handler = __import__('langgraph_sdk').Auth()\n"
    )
    settings = Settings.load({}, {})
    for reference, message in (
        ("./auth.py:auth", "is not a langgraph_sdk.Auth"),
        ("./auth.py:no_handler", "no @auth.authenticate handler"),
        ("./missing.py:auth", "not found"),
    ):
        project = parse_project(
            {"graphs": {"g": "./auth.py:auth"}, "auth": {"path": reference}}, root=tmp_path
        )
        with pytest.raises(InvalidArgumentError, match=message):
            build_access_control(settings, project, storage=None)  # type: ignore[arg-type]


def request_with(headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/threads",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope)


def test_auth_cache_reuses_successes_by_header_values(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        calls.append(authorization)
        if authorization != "Bearer good":
            raise Auth.exceptions.HTTPException(401, "no")
        return "alice"

    cache = AuthCache.from_project({"cache_keys": ["Authorization"], "ttl_seconds": 10})
    authenticator = CustomAuthenticator(auth, cache)
    clock = [100.0]
    monkeypatch.setattr("garrison.auth.custom_authenticator.time.monotonic", lambda: clock[0])

    async def attempt(value: str) -> str | None:
        try:
            principal = await authenticator.authenticate(request_with({"authorization": value}))
        except AuthenticationError:
            return None
        return principal.identity

    async def scenario() -> None:
        assert await attempt("Bearer good") == "alice"
        assert await attempt("Bearer good") == "alice"
        assert calls == ["Bearer good"]  # the second came from the cache
        assert await attempt("Bearer bad") is None
        assert await attempt("Bearer bad") is None
        assert calls.count("Bearer bad") == 2  # failures are never cached
        clock[0] += 11  # past the TTL: asked again
        assert await attempt("Bearer good") == "alice"
        assert calls.count("Bearer good") == 2

    asyncio.run(scenario())
    for bad in ({"cache_keys": []}, {"cache_keys": ["a"], "ttl_seconds": 0}, "yes"):
        with pytest.raises(ValueError):
            AuthCache.from_project(bad)
