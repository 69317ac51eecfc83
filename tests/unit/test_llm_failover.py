"""Retries, failover order, circuit breakers and fallback, over real HTTP to fake providers."""

import logging
import socket
import time
from collections.abc import Iterator

import openai
import pytest
from langchain_core.messages import AIMessage

from garrison.llm import AllProvidersFailedError, CircuitBreakers
from garrison.llm.profiles import DEFAULT_FALLBACK_MESSAGE
from tests.support.fakellm import (
    Answer,
    Fail,
    FakeAnthropic,
    FakeClock,
    FakeOpenAI,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
)


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        server.default = Answer("Primary here.")
        yield server


@pytest.fixture
def backup() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        server.default = Answer("Backup here.")
        yield server


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def test_a_healthy_primary_answers(primary: FakeOpenAI, backup: FakeAnthropic) -> None:
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    answer = await model.ainvoke("hi")

    assert answer.text == "Primary here."
    assert answer.response_metadata["garrison_provider"] == "primary"
    assert (len(primary.requests), len(backup.requests)) == (1, 0)


async def test_transient_errors_are_retried_on_the_same_provider(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.script(Fail(500), Fail(503))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    answer = await model.ainvoke("hi")

    assert answer.text == "Primary here."
    assert (len(primary.requests), len(backup.requests)) == (3, 0)


async def test_fails_over_in_priority_order(
    primary: FakeOpenAI, backup: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    primary.default = Fail(500)
    with running(FakeOpenAI()) as second:
        second.default = Fail(502)
        model = profile_model(
            [
                {**openai_entry(primary), "base_url": _closed_port_url(), "name": "refused"},
                openai_entry(primary),
                openai_entry(second, name="second"),
                anthropic_entry(backup),
            ]
        )
        with caplog.at_level(logging.WARNING, logger="garrison.llm"):
            answer = await model.ainvoke("hi")

        assert answer.text == "Backup here."
        assert answer.response_metadata["garrison_provider"] == "backup"
        assert (len(primary.requests), len(second.requests), len(backup.requests)) == (3, 3, 1)
        assert primary.requests[-1].at < second.requests[0].at < backup.requests[0].at
    failovers = [r.getMessage() for r in caplog.records if "LLM failover" in r.getMessage()]
    assert failovers == [
        "LLM failover: refused/gpt-fake gave up (connection_error after 3 attempts); "
        "next: primary/gpt-fake",
        "LLM failover: primary/gpt-fake gave up (server_error (HTTP 500) after 3 attempts); "
        "next: second/gpt-fake",
        "LLM failover: second/gpt-fake gave up (server_error (HTTP 502) after 3 attempts); "
        "next: backup/claude-fake",
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, openai.BadRequestError), (422, openai.UnprocessableEntityError)],
)
async def test_client_errors_are_neither_retried_nor_failed_over(
    primary: FakeOpenAI, backup: FakeAnthropic, status: int, error: type[Exception]
) -> None:
    primary.script(Fail(status, message="messages[0] is malformed"))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    with pytest.raises(error, match="messages\\[0\\] is malformed"):
        await model.ainvoke("hi")
    assert (len(primary.requests), len(backup.requests)) == (1, 0)


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_provider_side_refusals_fail_over_without_retry(
    primary: FakeOpenAI, backup: FakeAnthropic, status: int
) -> None:
    primary.default = Fail(status)
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    answer = await model.ainvoke("hi")

    assert answer.text == "Backup here."
    assert (len(primary.requests), len(backup.requests)) == (1, 1)


@pytest.mark.parametrize(
    "headers", [{"Retry-After": "1"}, {"retry-after-ms": "400", "Retry-After": "1"}]
)
async def test_retry_after_is_honoured(
    primary: FakeOpenAI, backup: FakeAnthropic, headers: dict[str, str]
) -> None:
    primary.script(Fail(429, headers))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    answer = await model.ainvoke("hi")

    waited = primary.requests[1].at - primary.requests[0].at
    expected = 0.4 if "retry-after-ms" in headers else 1.0
    assert answer.text == "Primary here."
    assert expected <= waited < expected + 0.4
    assert len(backup.requests) == 0


async def test_a_retry_after_beyond_the_cap_fails_over_at_once(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(429, {"Retry-After": "120"})
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    model.resolve()  # build the providers (and import their SDKs) outside the measurement
    started = time.monotonic()
    answer = await model.ainvoke("hi")

    assert answer.text == "Backup here."
    assert time.monotonic() - started < 0.5
    assert len(primary.requests) == 1


async def test_breaker_opens_skips_the_provider_then_probes_and_closes(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    clock = FakeClock()
    breakers = CircuitBreakers(clock=clock)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        breakers=breakers,
        breaker={"failure_threshold": 3, "window_seconds": 60, "cooldown_seconds": 30},
    )
    primary.default = Fail(500)

    assert (await model.ainvoke("one")).text == "Backup here."  # 3 failures: open
    assert breakers.state("primary", "gpt-fake").status == "open"
    started = time.monotonic()
    assert (await model.ainvoke("two")).text == "Backup here."
    assert time.monotonic() - started < 0.3  # failed over at once
    assert len(primary.requests) == 3  # not called while open

    primary.default = Answer("Primary is back.")
    clock.advance(29)
    assert (await model.ainvoke("three")).text == "Backup here."
    assert len(primary.requests) == 3
    clock.advance(1)
    assert (await model.ainvoke("four")).text == "Primary is back."  # the probe
    assert breakers.state("primary", "gpt-fake").status == "closed"
    assert (await model.ainvoke("five")).text == "Primary is back."
    assert len(primary.requests) == 5


async def test_a_failed_probe_reopens_the_breaker(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    clock = FakeClock()
    breakers = CircuitBreakers(clock=clock)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)],
        breakers=breakers,
        breaker={"failure_threshold": 3, "cooldown_seconds": 30},
    )
    primary.default = Fail(503)
    await model.ainvoke("trip it")
    clock.advance(30)

    assert (await model.ainvoke("probe")).text == "Backup here."

    assert len(primary.requests) == 4  # one probe, no retries once it re-opened
    state = breakers.state("primary", "gpt-fake")
    assert (state.status, state.opened_at) == ("open", clock.now)


async def test_breakers_are_shared_by_every_model_using_the_provider(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    breakers = CircuitBreakers(clock=FakeClock())
    providers = [openai_entry(primary), anthropic_entry(backup)]
    support = profile_model(
        providers, breakers=breakers, name="support", breaker={"failure_threshold": 3}
    )
    triage = profile_model(
        providers, breakers=breakers, name="triage", breaker={"failure_threshold": 3}
    )
    primary.default = Fail(500)

    await support.ainvoke("trips the breaker")
    answer = await triage.ainvoke("another graph, same provider")

    assert answer.text == "Backup here."
    assert len(primary.requests) == 3


async def test_all_providers_down_raises_a_typed_error(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(500)
    backup.default = Fail(529)
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    with pytest.raises(AllProvidersFailedError) as caught:
        await model.ainvoke("hi")

    failures = caught.value.failures
    assert caught.value.profile == "test"
    assert [(f.provider, f.kind, f.attempts) for f in failures] == [
        ("primary", "server_error", 3),
        ("backup", "server_error", 3),
    ]
    assert "backup/claude-fake: server_error (HTTP 529) (3 attempts)" in str(caught.value)


async def test_all_providers_down_can_answer_with_an_apology(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(500)
    backup.default = Fail(401)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)], fallback={"mode": "message"}
    )

    answer = await model.ainvoke("hi")
    streamed = [chunk async for chunk in model.astream("hi")]

    assert isinstance(answer, AIMessage)
    assert answer.text == DEFAULT_FALLBACK_MESSAGE
    assert answer.response_metadata["garrison_fallback"] is True
    assert (
        "all LLM providers of profile 'test' failed" in answer.response_metadata["garrison_error"]
    )
    assert "".join(chunk.text for chunk in streamed) == DEFAULT_FALLBACK_MESSAGE


async def test_a_custom_apology(primary: FakeOpenAI) -> None:
    primary.default = Fail(500)
    model = profile_model(
        [openai_entry(primary)], fallback={"mode": "message", "message": "Back soon."}
    )

    assert (await model.ainvoke("hi")).text == "Back soon."


def test_sync_calls_fail_over_too(primary: FakeOpenAI, backup: FakeAnthropic) -> None:
    primary.default = Fail(500)
    model = profile_model(
        [openai_entry(primary), anthropic_entry(backup)], breaker={"failure_threshold": 10}
    )

    answer = model.invoke("hi")
    streamed = "".join(chunk.text for chunk in model.stream("hi"))

    assert answer.text == streamed == "Backup here."
    assert answer.response_metadata["garrison_provider"] == "backup"
    assert len(primary.requests) == 6
