"""Translating LangGraph stream chunks into API events."""

import pytest
from langchain_core.messages import AIMessageChunk, ToolMessage
from langgraph.types import Interrupt

from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.stream_events import (
    EventTranslator,
    parse_stream_modes,
    plan_stream,
    split_item,
)


def test_plan_always_asks_for_values_and_updates() -> None:
    plan = plan_stream(["messages-tuple", "custom"], subgraphs=False)
    assert plan.graph_modes[:2] == ["values", "updates"]
    assert set(plan.graph_modes) == {"values", "updates", "messages", "custom"}
    assert not plan.use_events
    assert plan_stream(["events"], subgraphs=True).use_events


def test_parse_stream_modes() -> None:
    assert parse_stream_modes(None) == ["values"]
    assert parse_stream_modes("updates") == ["updates"]
    assert parse_stream_modes(["values", "values", "debug"]) == ["values", "debug"]
    with pytest.raises(InvalidArgumentError, match="tools"):
        parse_stream_modes(["values", "tools"])


def test_only_requested_modes_are_published_but_values_are_tracked() -> None:
    translator = EventTranslator(plan_stream(["updates"], subgraphs=False))
    assert translator.translate((), "values", {"x": 1}) == []
    assert translator.translate((), "updates", {"n": {"x": 1}}) == [("updates", {"n": {"x": 1}})]
    assert translator.last_values == {"x": 1}


def test_subgraph_events_carry_their_namespace_and_do_not_touch_root_values() -> None:
    translator = EventTranslator(plan_stream(["values"], subgraphs=True))
    events = translator.translate(("inner:1", "deep:2"), "values", {"y": 2})
    assert events == [("values|inner:1|deep:2", {"y": 2})]
    assert translator.last_values is None


def test_interrupts_are_detected_from_root_updates() -> None:
    translator = EventTranslator(plan_stream(["values"], subgraphs=False))
    interrupt = Interrupt(value="approve?", id="i1")
    translator.translate((), "values", {"x": 1})
    translator.translate((), "updates", {"__interrupt__": (interrupt,)})
    assert translator.stopped_at_interrupt
    assert translator.output() == {"x": 1, "__interrupt__": [interrupt]}


def test_static_breakpoints_count_as_stopping_at_an_interrupt() -> None:
    translator = EventTranslator(plan_stream(["values"], subgraphs=False))
    translator.translate((), "updates", {"__interrupt__": ()})
    assert translator.stopped_at_interrupt


def test_interrupts_reach_clients_without_values_or_updates() -> None:
    translator = EventTranslator(plan_stream(["custom"], subgraphs=False))
    interrupt = Interrupt(value="?", id="i1")
    events = translator.translate((), "updates", {"__interrupt__": (interrupt,)})
    assert events == [("values", {"__interrupt__": (interrupt,)})]


def test_messages_tuple_and_legacy_messages() -> None:
    translator = EventTranslator(plan_stream(["messages", "messages-tuple"], subgraphs=False))
    meta = {"langgraph_node": "agent"}
    first = translator.translate((), "messages", (AIMessageChunk(content="Hel", id="m1"), meta))
    second = translator.translate((), "messages", (AIMessageChunk(content="lo", id="m1"), meta))
    assert [name for name, _ in first] == ["messages", "messages/metadata", "messages/partial"]
    assert [name for name, _ in second] == ["messages", "messages/partial"]
    assert second[1][1][0].content == "Hello"  # partials accumulate
    tool = translator.translate(
        (), "messages", (ToolMessage(content="ok", tool_call_id="c", id="t1"), meta)
    )
    assert [name for name, _ in tool][-1] == "messages/complete"


def test_debug_checkpoint_events_gain_checkpoint_ids() -> None:
    translator = EventTranslator(plan_stream(["debug"], subgraphs=False))
    chunk = {
        "type": "checkpoint",
        "payload": {"config": {"configurable": {"checkpoint_id": "c2"}}, "parent_config": None},
    }
    ((name, data),) = translator.translate((), "debug", chunk)
    assert name == "debug"
    assert data["payload"]["checkpoint"] == {"checkpoint_id": "c2"}
    assert data["payload"]["parent_checkpoint"] is None


def test_split_item_by_shape() -> None:
    assert split_item(("values", 1), plan_stream(["values"], subgraphs=False)) == ((), "values", 1)
    assert split_item((("a:1",), "values", 1), plan_stream(["values"], subgraphs=True)) == (
        ("a:1",),
        "values",
        1,
    )


async def test_readers_drop_events_of_an_attempt_that_was_superseded() -> None:
    from garrison.broker.ports import StreamRecord
    from garrison.services.streams import without_stale_attempts

    async def log():  # type: ignore[no-untyped-def]
        yield StreamRecord("1-0", "r", "metadata", b"{}", attempt=1)
        yield StreamRecord("1-1", "r", "values", b"1", attempt=1)
        yield None  # idle tick
        yield StreamRecord("2-0", "r", "metadata", b"{}", attempt=2)
        yield StreamRecord("2-1", "r", "values", b"zombie", attempt=1)  # lost its lease
        yield StreamRecord("2-2", "other", "values", b"x", attempt=1)  # another run: kept
        yield StreamRecord("2-3", "r", "values", b"2", attempt=2)
        yield StreamRecord("2-4", "", "state_update", b"{}")  # thread event: kept

    kept = [r.id if r else None async for r in without_stale_attempts(log())]
    assert kept == ["1-0", "1-1", None, "2-0", "2-2", "2-3", "2-4"]
