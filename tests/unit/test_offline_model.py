"""Tests for the deterministic offline chat model and its default policy."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel

from garrison.llm import (
    OfflineChatModel,
    PlannedToolCall,
    PolicyReply,
    ToolSpec,
    extract_tool_args,
    match_tool,
)


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by id."""
    return f"order {order_id}"


@tool
def issue_refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return f"refunded {amount} on {order_id}"


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


REFUND_REQUEST = "Please issue a refund of $25.50 for order A1001"


def _as_chunks(messages: Iterable[AIMessage]) -> list[AIMessageChunk]:
    """Narrow a bound model's stream, typed as plain messages, to its chunks."""
    chunks = list(messages)
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    return cast("list[AIMessageChunk]", chunks)


def _merge(chunks: Sequence[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    return merged


def test_invoke_acknowledges_the_question_with_model_metadata() -> None:
    reply = OfflineChatModel().invoke("What are your opening hours?")

    assert "What are your opening hours?" in reply.text
    assert reply.tool_calls == []
    assert reply.response_metadata == {"model_name": "garrison-offline", "finish_reason": "stop"}
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == 5
    assert reply.usage_metadata["output_tokens"] == len(reply.text.split())


async def test_ainvoke_matches_invoke() -> None:
    model = OfflineChatModel()

    sync_reply = model.invoke("hello")
    async_reply = await model.ainvoke("hello")

    assert async_reply.content == sync_reply.content
    assert async_reply.usage_metadata == sync_reply.usage_metadata


def test_stream_yields_word_chunks_that_join_to_the_invoke_output() -> None:
    model = OfflineChatModel()

    chunks = list(model.stream("Tell me  about\tshipping"))
    reply = model.invoke("Tell me  about\tshipping")

    texts = [chunk.text for chunk in chunks if chunk.text]
    assert len(texts) > 5
    assert all(len(text.split()) == 1 for text in texts)
    merged = _merge(chunks)
    assert merged.content == reply.content
    assert merged.usage_metadata == reply.usage_metadata
    assert merged.response_metadata == reply.response_metadata


async def test_astream_yields_word_chunks_that_join_to_the_invoke_output() -> None:
    model = OfflineChatModel()

    chunks = [chunk async for chunk in model.astream("Tell me about shipping")]

    assert len([chunk for chunk in chunks if chunk.text]) > 5
    assert _merge(chunks).content == (await model.ainvoke("Tell me about shipping")).content


def test_same_conversation_and_tools_give_identical_replies() -> None:
    first = OfflineChatModel().bind_tools([lookup_order, issue_refund]).invoke(REFUND_REQUEST)
    second = OfflineChatModel().bind_tools([lookup_order, issue_refund]).invoke(REFUND_REQUEST)
    other = OfflineChatModel().bind_tools([lookup_order, issue_refund]).invoke("refund A1002")

    assert first.tool_calls == second.tool_calls
    assert first.tool_calls[0]["id"] is not None
    assert first.tool_calls[0]["id"].startswith("call_")
    assert first.tool_calls[0]["id"] != other.tool_calls[0]["id"]


def test_tool_call_ids_ignore_random_message_ids() -> None:
    model = OfflineChatModel().bind_tools([lookup_order])

    one = model.invoke([HumanMessage("look up order A1001", id="random-1")])
    two = model.invoke([HumanMessage("look up order A1001", id="random-2")])

    assert one.tool_calls == two.tool_calls


def test_auto_tool_choice_calls_the_tool_the_request_refers_to() -> None:
    reply = OfflineChatModel().bind_tools([lookup_order, issue_refund]).invoke(REFUND_REQUEST)

    assert reply.content == ""
    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [
        ("issue_refund", {"order_id": "A1001", "amount": 25.5})
    ]
    assert reply.response_metadata["finish_reason"] == "tool_calls"


def test_auto_tool_choice_answers_in_text_when_no_tool_is_mentioned() -> None:
    reply = OfflineChatModel().bind_tools([lookup_order]).invoke("Good morning!")

    assert reply.tool_calls == []
    assert "Good morning!" in reply.text


@pytest.mark.parametrize(
    "tool_choice", ["lookup_order", {"type": "function", "function": {"name": "lookup_order"}}]
)
def test_tool_choice_naming_a_tool_forces_that_tool(tool_choice: str | dict[str, Any]) -> None:
    model = OfflineChatModel().bind_tools([lookup_order, issue_refund], tool_choice=tool_choice)

    reply = model.invoke(REFUND_REQUEST)

    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [
        ("lookup_order", {"order_id": "A1001"})
    ]


@pytest.mark.parametrize("tool_choice", ["any", "required", True])
def test_tool_choice_any_forces_a_call_even_for_small_talk(tool_choice: str | bool) -> None:
    model = OfflineChatModel().bind_tools([lookup_order], tool_choice=tool_choice)

    reply = model.invoke("hi there")

    assert [call["name"] for call in reply.tool_calls] == ["lookup_order"]
    assert reply.tool_calls[0]["args"] == {"order_id": "hi there"}


def test_tool_choice_none_suppresses_tool_calls() -> None:
    model = OfflineChatModel().bind_tools([lookup_order], tool_choice="none")

    reply = model.invoke("look up order A1001")

    assert reply.tool_calls == []
    assert reply.text


def test_tool_choice_naming_an_unbound_tool_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not name a bound tool"):
        OfflineChatModel().bind_tools([lookup_order], tool_choice="delete_everything")


def test_bind_tools_accepts_functions_and_openai_dicts() -> None:
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return city

    weather_dict = {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string", "enum": ["UTC", "CET"]}},
                "required": ["timezone"],
            },
        },
    }
    model = OfflineChatModel().bind_tools([get_weather, weather_dict])

    weather = model.invoke("What's the weather? city: Paris")
    clock = model.invoke("What time is it in CET?")

    assert weather.tool_calls[0]["name"] == "get_weather"
    assert weather.tool_calls[0]["args"] == {"city": "Paris"}
    assert clock.tool_calls[0]["name"] == "get_time"
    assert clock.tool_calls[0]["args"] == {"timezone": "CET"}


def test_stream_emits_tool_call_chunks_that_merge_into_the_tool_call() -> None:
    model = OfflineChatModel().bind_tools([lookup_order, issue_refund])

    chunks = _as_chunks(model.stream(REFUND_REQUEST))

    call_chunks = [chunk for chunk in chunks if chunk.tool_call_chunks]
    assert len(call_chunks) > 1
    first = call_chunks[0].tool_call_chunks[0]
    assert first["name"] == "issue_refund"
    assert first["id"] == model.invoke(REFUND_REQUEST).tool_calls[0]["id"]
    assert all(c.tool_call_chunks[0]["name"] is None for c in call_chunks[1:])
    assert _merge(chunks).tool_calls == model.invoke(REFUND_REQUEST).tool_calls


def test_usage_and_response_metadata_arrive_on_the_last_chunk_only() -> None:
    chunks = list(OfflineChatModel(model_name="demo").stream("one two three"))

    assert all(chunk.usage_metadata is None for chunk in chunks[:-1])
    assert chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata["input_tokens"] == 3
    assert chunks[-1].response_metadata == {"model_name": "demo", "finish_reason": "stop"}


def test_stop_sequences_truncate_the_content() -> None:
    model = OfflineChatModel(policy=lambda messages, tools: "first part. STOP second part")

    assert model.invoke("go", stop=["STOP"]).content == "first part. "


def test_with_structured_output_returns_a_validated_model() -> None:
    structured = OfflineChatModel().with_structured_output(Person)

    assert structured.invoke("name: Alice, age: 30") == Person(name="Alice", age=30)


def test_with_structured_output_include_raw_exposes_the_forced_tool_call() -> None:
    structured = OfflineChatModel().with_structured_output(Person, include_raw=True)

    result = structured.invoke("Bob turned 41 today")

    assert isinstance(result, dict)
    assert result["parsing_error"] is None
    assert result["parsed"] == Person(name="Bob turned 41 today", age=41)
    assert result["raw"].tool_calls[0]["name"] == "Person"


def test_policy_override_receives_messages_and_offered_tools() -> None:
    seen: list[tuple[list[str], list[str]]] = []

    def policy(messages: Sequence[BaseMessage], tools: Sequence[ToolSpec]) -> PolicyReply:
        seen.append(([m.text for m in messages], [t.name for t in tools]))
        return PolicyReply(
            content="Checking.", tool_calls=[PlannedToolCall("lookup_order", {"order_id": "Z9"})]
        )

    model = OfflineChatModel(policy=policy).bind_tools(
        [lookup_order, issue_refund], tool_choice="lookup_order"
    )
    reply = model.invoke("anything")

    assert seen == [(["anything"], ["lookup_order"])]
    assert reply.content == "Checking."
    assert reply.tool_calls[0]["args"] == {"order_id": "Z9"}


def test_policy_calling_a_tool_that_is_not_bound_is_an_error() -> None:
    model = OfflineChatModel(
        policy=lambda messages, tools: PolicyReply(tool_calls=[PlannedToolCall("lookup_order")])
    )

    with pytest.raises(ValueError, match="not offered"):
        model.invoke("hi")


def test_default_policy_summarises_tool_results() -> None:
    conversation: list[BaseMessage] = [
        HumanMessage("look up order A1001"),
        AIMessage(
            "", tool_calls=[{"name": "lookup_order", "args": {"order_id": "A1001"}, "id": "c1"}]
        ),
        ToolMessage("Order A1001 shipped yesterday.", tool_call_id="c1"),
    ]

    reply = OfflineChatModel().bind_tools([lookup_order]).invoke(conversation)

    assert reply.tool_calls == []
    assert "lookup_order returned: Order A1001 shipped yesterday." in reply.text


def test_token_delay_slows_sync_streaming() -> None:
    model = OfflineChatModel(token_delay_seconds=0.01, policy=lambda m, t: "a b c d e f")

    started = time.perf_counter()
    chunks = list(model.stream("go"))
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.01 * (len(chunks) - 1)


async def test_token_delay_slows_async_streaming() -> None:
    model = OfflineChatModel(token_delay_seconds=0.01, policy=lambda m, t: "a b c d e f")

    started = time.perf_counter()
    chunks = [chunk async for chunk in model.astream("go")]
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.01 * (len(chunks) - 1)


def test_match_tool_prefers_exact_names_and_ignores_generic_verbs() -> None:
    tools = [ToolSpec("get_weather"), ToolSpec("get_time"), ToolSpec("lookup_order")]

    assert match_tool("call lookup_order please", tools) == tools[2]
    assert match_tool("what time is it", tools) == tools[1]
    assert match_tool("get me something", tools) is None


def test_extract_tool_args_uses_keys_nearby_words_and_required_defaults() -> None:
    spec = ToolSpec(
        "ship",
        parameters={
            "type": "object",
            "properties": {
                "amount": {"type": "integer"},
                "order_id": {"type": "string"},
                "express": {"type": "boolean"},
                "note": {"type": "string"},
                "priority": {"anyOf": [{"type": "number"}, {"type": "null"}]},
            },
            "required": ["amount", "order_id", "express"],
        },
    )

    args = extract_tool_args(spec, "ship 3 units of order #B-77, priority 0.5")

    assert args == {"amount": 3, "order_id": "B-77", "express": False, "priority": 0.5}
    explicit = extract_tool_args(spec, "order_id = 'X1', amount: 2, express=yes, note: fragile")
    assert explicit == {"order_id": "X1", "amount": 2, "express": True, "note": "fragile"}
    assert extract_tool_args(spec, "order id: A1001 please")["order_id"] == "A1001"
