"""Streaming through failover, mid-stream failures, tool calls and structured output."""

import json
from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from pydantic import BaseModel

from garrison.llm import StreamInterruptedError
from tests.support.fakellm import (
    Answer,
    Drop,
    Fail,
    FakeAnthropic,
    FakeOpenAI,
    FakeToolCall,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
)

BACKUP_TEXT = "The backup provider streams this answer word by word."


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        server.default = Answer("The primary provider answers.")
        yield server


@pytest.fixture
def backup() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        server.default = Answer(BACKUP_TEXT)
        yield server


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by its id."""
    return f"Order {order_id} has shipped."


async def test_tokens_stream_one_by_one(primary: FakeOpenAI, backup: FakeAnthropic) -> None:
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    chunks = [chunk async for chunk in model.astream("hi")]

    texts = [chunk.text for chunk in chunks if chunk.text]
    assert texts == ["The ", "primary ", "provider ", "answers."]
    assert chunks[0].response_metadata["garrison_provider"] == "primary"


async def test_streaming_fails_over_before_any_token(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(500)
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    chunks = [chunk async for chunk in model.astream("hi")]

    assert "".join(chunk.text for chunk in chunks) == BACKUP_TEXT
    assert len([chunk for chunk in chunks if chunk.text]) == len(BACKUP_TEXT.split())
    assert chunks[0].response_metadata["garrison_provider"] == "backup"


async def test_a_stream_broken_before_the_first_token_fails_over(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Drop(after_tokens=0)  # response head and role chunk, then nothing
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    text = "".join([chunk.text async for chunk in model.astream("hi")])

    assert text == BACKUP_TEXT  # nothing of the primary leaked into the answer
    assert (len(primary.requests), len(backup.requests)) == (3, 1)


async def test_a_stream_broken_after_the_first_token_raises_without_duplicates(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.script(Drop(after_tokens=2, answer=Answer("Partial answer that never ends.")))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    received: list[str] = []
    with pytest.raises(
        StreamInterruptedError, match="primary/gpt-fake failed after streaming"
    ) as caught:
        async for chunk in model.astream("hi"):
            received.append(chunk.text)

    assert "".join(received) == "Partial answer "
    assert caught.value.__cause__ is not None
    assert (len(primary.requests), len(backup.requests)) == (1, 0)


def test_sync_stream_broken_after_the_first_token_raises(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.script(Drop(after_tokens=1))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    with pytest.raises(StreamInterruptedError):
        for _ in model.stream("hi"):
            pass
    assert len(backup.requests) == 0


async def test_non_streaming_calls_retry_a_broken_stream_at_any_point(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    # Nothing was shown to the caller yet, so even a late break is safe to retry.
    primary.script(Drop(after_tokens=3))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    answer = await model.ainvoke("hi")

    assert answer.text == "The primary provider answers."
    assert (len(primary.requests), len(backup.requests)) == (2, 0)


async def test_tool_calls_survive_failover_between_provider_dialects(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(503)
    backup.default = Answer("", tool_calls=(FakeToolCall("lookup_order", {"order_id": "A1001"}),))
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])
    bound = model.bind_tools([lookup_order], tool_choice="required")

    answer = await bound.ainvoke("Where is order A1001?")
    streamed: AIMessageChunk | None = None
    async for chunk in bound.astream("Where is order A1001?"):
        streamed = chunk if streamed is None else streamed + chunk

    for message in (answer, streamed):
        assert message is not None
        (call,) = message.tool_calls
        assert (call["name"], call["args"]) == ("lookup_order", {"order_id": "A1001"})
    openai_body, anthropic_body = primary.requests[0].body, backup.requests[0].body
    assert openai_body["tools"][0]["function"]["name"] == "lookup_order"
    assert openai_body["tool_choice"] == "required"
    assert anthropic_body["tools"][0]["name"] == "lookup_order"
    assert "input_schema" in anthropic_body["tools"][0]
    assert anthropic_body["tool_choice"]["type"] == "any"


async def test_tool_results_reach_the_backup_in_its_own_format(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(500)
    model = profile_model([openai_entry(primary), anthropic_entry(backup)]).bind_tools(
        [lookup_order]
    )
    conversation = [
        {"role": "user", "content": "Where is order A1001?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "name": "lookup_order", "args": {"order_id": "A1001"}}],
        },
        {"role": "tool", "content": "Order A1001 has shipped.", "tool_call_id": "call_1"},
    ]

    answer = await model.ainvoke(conversation)

    assert answer.text == BACKUP_TEXT
    sent = json.dumps(backup.requests[0].body["messages"])
    assert '"tool_use"' in sent and '"tool_result"' in sent and "call_1" in sent


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    celsius: float


async def test_structured_output_through_failover(
    primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    primary.default = Fail(500)
    backup.default = Answer(
        "", tool_calls=(FakeToolCall("Weather", {"city": "Oslo", "celsius": -3.5}),)
    )
    model = profile_model([openai_entry(primary), anthropic_entry(backup)])

    weather = await model.with_structured_output(Weather).ainvoke("Weather in Oslo?")

    assert weather == Weather(city="Oslo", celsius=-3.5)
    assert backup.requests[0].body["tool_choice"]["type"] == "any"


def test_structured_output_sync_from_the_primary(primary: FakeOpenAI) -> None:
    primary.default = Answer(
        "", tool_calls=(FakeToolCall("Weather", {"city": "Lima", "celsius": 19}),)
    )
    model = profile_model([openai_entry(primary)])

    assert model.with_structured_output(Weather).invoke("Lima?") == Weather(city="Lima", celsius=19)
