"""Failure classification: statuses, Retry-After, and real SDK exceptions off the wire."""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from langchain_core import exceptions as lc_exceptions
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from garrison.llm._anthropic import TimedChatAnthropic
from garrison.llm.errors import CircuitOpenError, ProviderTimeoutError, StreamInterruptedError
from garrison.llm.failures import Failure, FailureKind, classify, kind_for_status, parse_retry_after
from tests.support.fakellm import Drop, Fail, FakeAnthropic, FakeOpenAI, running

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "client_error"),
        (401, "auth_error"),
        (403, "auth_error"),
        (404, "not_found"),
        (408, "timeout"),
        (409, "client_error"),
        (413, "client_error"),
        (422, "client_error"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
        (504, "server_error"),
        (529, "server_error"),
    ],
)
def test_kind_for_status(status: int, kind: FailureKind) -> None:
    assert kind_for_status(status) == kind


@pytest.mark.parametrize(
    ("kind", "retryable", "fails_over", "counts"),
    [
        ("rate_limited", True, True, True),
        ("timeout", True, True, True),
        ("server_error", True, True, True),
        ("connection_error", True, True, True),
        ("auth_error", False, True, True),
        ("not_found", False, True, True),
        ("breaker_open", False, True, False),
        ("client_error", False, False, False),
        ("interrupted", False, False, False),
        ("error", False, False, False),
    ],
)
def test_what_each_kind_means(
    kind: FailureKind, retryable: bool, fails_over: bool, counts: bool
) -> None:
    failure = Failure(kind)
    assert (failure.retryable, failure.fails_over, failure.counts_against_provider) == (
        retryable,
        fails_over,
        counts,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}, 30.0),
        ({"Retry-After": "Wed, 01 Jan 2025 11:59:00 GMT"}, 0.0),
        ({"Retry-After": "whenever"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ProviderTimeoutError("first_token", 1.0), "timeout"),
        (TimeoutError(), "timeout"),
        (CircuitOpenError("p", "m"), "breaker_open"),
        (StreamInterruptedError("p", "m", "boom"), "interrupted"),
        (ConnectionResetError(), "connection_error"),
        (lc_exceptions.ModelRateLimitError("slow down"), "rate_limited"),
        (lc_exceptions.ModelAPIError("overloaded"), "server_error"),
        (lc_exceptions.ModelAuthenticationError("who?"), "auth_error"),
        (lc_exceptions.ContextOverflowError("too long"), "client_error"),
        (ValueError("a bug"), "error"),
    ],
)
def test_classify_plain_exceptions(exc: BaseException, kind: FailureKind) -> None:
    assert classify(exc, NOW).kind == kind


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        yield server


def _openai(base_url: str) -> ChatOpenAI:
    return ChatOpenAI(model="gpt-fake", api_key="k", base_url=base_url, max_retries=0, timeout=5)


def _anthropic(base_url: str) -> TimedChatAnthropic:
    return TimedChatAnthropic(
        model="claude-fake", api_key="k", base_url=base_url, max_retries=0, timeout=5
    )


def _raised(model: BaseChatModel, stream: bool) -> BaseException:
    try:
        if stream:
            list(model.stream("hi"))
        else:
            model.invoke("hi")
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


WIRE_CASES = [
    (Fail(400), Failure("client_error", 400)),
    (Fail(401), Failure("auth_error", 401)),
    (Fail(404), Failure("not_found", 404)),
    (Fail(422), Failure("client_error", 422)),
    (Fail(429, {"retry-after": "7"}), Failure("rate_limited", 429, 7.0)),
    (Fail(429, {"retry-after-ms": "1500"}), Failure("rate_limited", 429, 1.5)),
    (Fail(500), Failure("server_error", 500)),
    (Fail(503, {"Retry-After": "2"}), Failure("server_error", 503, 2.0)),
    (Fail(529), Failure("server_error", 529)),
]


@pytest.mark.parametrize(("behaviour", "expected"), WIRE_CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_classify_openai_errors_from_the_wire(
    openai_server: FakeOpenAI, behaviour: Fail, expected: Failure, stream: bool
) -> None:
    openai_server.script(behaviour)
    assert classify(_raised(_openai(openai_server.base_url), stream), NOW) == expected


@pytest.mark.parametrize(("behaviour", "expected"), WIRE_CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_classify_anthropic_errors_from_the_wire(
    anthropic_server: FakeAnthropic, behaviour: Fail, expected: Failure, stream: bool
) -> None:
    anthropic_server.script(behaviour)
    assert classify(_raised(_anthropic(anthropic_server.url), stream), NOW) == expected


def test_dropped_streams_are_connection_errors(
    openai_server: FakeOpenAI, anthropic_server: FakeAnthropic
) -> None:
    openai_server.script(Drop(after_tokens=2))
    anthropic_server.script(Drop(after_tokens=2))

    assert classify(_raised(_openai(openai_server.base_url), True)).kind == "connection_error"
    assert classify(_raised(_anthropic(anthropic_server.url), True)).kind == "connection_error"


def test_refused_connections_are_connection_errors() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}"

    assert classify(_raised(_openai(f"{url}/v1"), False)).kind == "connection_error"
    assert classify(_raised(_anthropic(url), False)).kind == "connection_error"
