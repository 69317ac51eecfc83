"""Connect, first-token and total timeouts: every call ends, and in bounded time."""

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.llm import AllProvidersFailedError, StreamInterruptedError
from tests.support.fakellm import (
    Answer,
    FakeAnthropic,
    FakeOpenAI,
    Hang,
    Stall,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
)

TWO_ATTEMPTS = {"max_attempts": 2, "initial_delay": 0.01, "max_delay": 0.01}
SLOW = Answer(" ".join(f"word{i}" for i in range(40)), token_delay=0.05)  # 2 s in all


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def backup() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        server.default = Answer("Backup here.")
        yield server


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An address that accepts no connection: its listen backlog is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_connect_timeout(
    blackhole: str, backup: FakeAnthropic, primary: FakeOpenAI, kind: str
) -> None:
    entry: dict[str, Any] = (
        {**openai_entry(primary), "base_url": f"{blackhole}/v1"}
        if kind == "openai"
        else {**anthropic_entry(backup, name="primary"), "base_url": blackhole}
    )
    model = profile_model(
        [entry, anthropic_entry(backup)],
        retry=TWO_ATTEMPTS,
        timeouts={"connect": 0.2, "first_token": 5, "total": 10},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    answer = await model.ainvoke("hi")

    elapsed = time.monotonic() - started
    assert answer.text == "Backup here."
    assert 0.4 <= elapsed < 1.2  # two connect attempts of 0.2 s, then the backup


@pytest.mark.parametrize("behaviour", [Stall(30), Hang(30)], ids=["stall", "hang"])
async def test_first_token_timeout_fails_over(
    primary: FakeOpenAI, backup: FakeAnthropic, behaviour: Stall | Hang
) -> None:
    primary.default = behaviour
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        retry=TWO_ATTEMPTS,
        timeouts={"connect": 1, "first_token": 0.25, "total": 10},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    chunks = [chunk async for chunk in model.astream("hi")]

    assert "".join(chunk.text for chunk in chunks) == "Backup here."
    assert 0.5 <= time.monotonic() - started < 1.2
    assert len(primary.requests) == 2


def test_sync_first_token_timeout_fails_over(primary: FakeOpenAI, backup: FakeAnthropic) -> None:
    primary.default = Stall(30)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        retry=TWO_ATTEMPTS,
        timeouts={"connect": 1, "first_token": 0.25, "total": 10},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    answer = model.invoke("hi")

    assert answer.text == "Backup here."
    assert time.monotonic() - started < 1.5


async def test_total_timeout_fails_over_when_nothing_was_shown(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = SLOW
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        retry={"max_attempts": 1},
        timeouts={"connect": 0.3, "first_token": 0.3, "total": 0.4},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    answer = await model.ainvoke("hi")

    assert answer.text == "Backup here."
    assert 0.4 <= time.monotonic() - started < 0.9


async def test_total_timeout_mid_stream_raises(primary: FakeOpenAI, backup: FakeAnthropic) -> None:
    primary.default = SLOW
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        timeouts={"connect": 0.3, "first_token": 0.3, "total": 0.4},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    received: list[str] = []
    with pytest.raises(StreamInterruptedError, match=r"timeout"):
        async for chunk in model.astream("hi"):
            received.append(chunk.text)

    assert 0.4 <= time.monotonic() - started < 0.9
    assert 3 <= len([text for text in received if text]) < 40
    assert len(backup.requests) == 0


async def test_everything_hanging_still_ends_with_the_fallback(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Hang(30)
    backup.default = Hang(30)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        retry={"max_attempts": 1},
        timeouts={"connect": 0.2, "first_token": 0.2, "total": 0.5},
    )

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    with pytest.raises(AllProvidersFailedError, match="timeout"):
        await model.ainvoke("hi")

    assert time.monotonic() - started < 1.0
