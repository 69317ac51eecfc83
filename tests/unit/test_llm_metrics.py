"""Prometheus metrics of LLM calls, read back from the default registry."""

import uuid
from collections.abc import Iterator

import pytest

from garrison.llm import CircuitBreakers, StreamInterruptedError
from tests.support.fakellm import (
    Answer,
    Drop,
    Fail,
    FakeAnthropic,
    FakeClock,
    FakeOpenAI,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
    sample,
)


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        yield server


@pytest.fixture
def backup() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        server.default = Answer("Backup answer in five words.", input_tokens=13)
        yield server


def _names() -> tuple[str, str]:
    # Unique provider names keep each test's samples apart in the shared registry.
    suffix = uuid.uuid4().hex[:8]
    return f"primary-{suffix}", f"backup-{suffix}"


async def test_calls_latency_ttft_tokens_and_failovers_are_counted(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    first, second = _names()
    primary.default = Fail(500)
    primary.script(Fail(429))
    model = profile_model([openai_entry(primary, name=first), anthropic_entry(backup, name=second)])

    await model.ainvoke("hi")

    def calls(provider: str, model_name: str, status: str) -> float:
        return sample(
            "langgraph_llm_api_calls_total", provider=provider, model=model_name, status=status
        )

    assert calls(first, "gpt-fake", "rate_limited") == 1
    assert calls(first, "gpt-fake", "server_error") == 2
    assert calls(first, "gpt-fake", "ok") == 0
    assert calls(second, "claude-fake", "ok") == 1
    labels = {"provider": second, "model": "claude-fake"}
    assert sample("langgraph_llm_api_call_duration_seconds_count", **labels) == 1
    assert sample("langgraph_llm_time_to_first_token_seconds_count", **labels) == 1
    assert (
        sample("langgraph_llm_api_call_duration_seconds_count", provider=first, model="gpt-fake")
        == 0
    )
    assert sample("langgraph_llm_tokens_total", **labels, type="input") == 13
    assert sample("langgraph_llm_tokens_total", **labels, type="output") == 5
    assert (
        sample(
            "langgraph_llm_failovers_total", provider=first, model="gpt-fake", reason="server_error"
        )
        == 1
    )


async def test_breaker_state_gauge_follows_the_breaker(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    first, second = _names()
    clock = FakeClock()
    model = profile_model(
        [openai_entry(primary, name=first), anthropic_entry(backup, name=second)],
        breakers=CircuitBreakers(clock=clock),
        breaker={"failure_threshold": 3, "cooldown_seconds": 10},
    )
    gauge = {"provider": first, "model": "gpt-fake"}
    primary.default = Fail(500)

    await model.ainvoke("trip")
    assert sample("langgraph_llm_circuit_breaker_state", **gauge) == 2
    await model.ainvoke("skip")
    assert sample("langgraph_llm_failovers_total", **gauge, reason="breaker_open") == 1

    primary.default = Answer("ok")
    clock.advance(10)
    await model.ainvoke("probe")
    assert sample("langgraph_llm_circuit_breaker_state", **gauge) == 0


async def test_fallbacks_and_interrupted_streams_are_counted(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    first, second = _names()
    backup.default = Fail(500)
    primary.default = Fail(500)
    profile = uuid.uuid4().hex[:8]
    model = profile_model(
        [openai_entry(primary, name=first), anthropic_entry(backup, name=second)],
        name=profile,
        fallback={"mode": "message"},
        retry={"max_attempts": 1},
    )

    await model.ainvoke("hi")
    primary.script(Drop(after_tokens=1))
    with pytest.raises(StreamInterruptedError):
        async for _ in model.astream("hi"):
            pass

    assert sample("langgraph_llm_fallbacks_total", profile=profile, mode="message") == 1
    assert (
        sample(
            "langgraph_llm_api_calls_total",
            provider=first,
            model="gpt-fake",
            status="connection_error",
        )
        == 1
    )
