"""Resilient models inside LangGraph: custom nodes, the messages stream, create_react_agent."""

from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from garrison.llm import ResilientChatModel
from tests.support.fakellm import (
    Answer,
    Behaviour,
    Fail,
    FakeAnthropic,
    FakeOpenAI,
    FakeToolCall,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
)

BACKUP_TEXT = "Order A1001 has shipped and arrives tomorrow."


@tool
def lookup_order(order_id: str) -> str:
    """Look up the status of an order by its id."""
    return f"Order {order_id} has shipped."


def _has_tool_result(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def _agent_turns(body: dict[str, Any]) -> Behaviour:
    """Call the tool first; answer once its result is in the conversation."""
    if any(_has_tool_result(message) for message in body["messages"]):
        return Answer(BACKUP_TEXT)
    return Answer("", tool_calls=(FakeToolCall("lookup_order", {"order_id": "A1001"}),))


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as server:
        server.default = Fail(500)  # the primary is down for the whole test
        yield server


@pytest.fixture
def backup() -> Iterator[FakeAnthropic]:
    with running(FakeAnthropic()) as server:
        server.responder = _agent_turns
        yield server


@pytest.fixture
def model(primary: FakeOpenAI, backup: FakeAnthropic) -> ResilientChatModel:
    return profile_model([openai_entry(primary), anthropic_entry(backup)])


def _chat_graph(model: ResilientChatModel) -> Any:
    async def chat(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=InMemorySaver())


async def test_custom_node_streams_tokens_once_through_the_messages_mode(
    model: ResilientChatModel, backup: FakeAnthropic
) -> None:
    backup.responder = None
    backup.default = Answer(BACKUP_TEXT)
    graph = _chat_graph(model)
    config = {"configurable": {"thread_id": "t"}}

    chunks: list[AIMessageChunk] = []
    async for event in graph.astream(
        {"messages": [("user", "Where is A1001?")]}, config, stream_mode="messages"
    ):
        message, metadata = cast("tuple[BaseMessage, dict[str, Any]]", event)
        assert metadata["langgraph_node"] == "chat"
        assert isinstance(message, AIMessageChunk)
        chunks.append(message)
    state = await graph.aget_state(config)

    texts = [chunk.text for chunk in chunks if chunk.text]
    assert texts == [token + " " for token in BACKUP_TEXT.split()[:-1]] + ["tomorrow."]
    assert "".join(texts) == state.values["messages"][-1].text == BACKUP_TEXT
    assert len({chunk.id for chunk in chunks}) == 1  # one message, not one per provider run


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
async def test_create_react_agent_runs_its_tool_loop_on_the_backup(
    model: ResilientChatModel, primary: FakeOpenAI, backup: FakeAnthropic
) -> None:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(model, [lookup_order])

    result = await agent.ainvoke({"messages": [("user", "Where is order A1001?")]})

    messages = result["messages"]
    (call_message,) = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    (tool_result,) = [m for m in messages if isinstance(m, ToolMessage)]
    assert call_message.tool_calls[0]["args"] == {"order_id": "A1001"}
    assert tool_result.text == "Order A1001 has shipped."
    assert messages[-1].text == BACKUP_TEXT
    assert len(backup.requests) == 2
    assert backup.requests[0].body["tools"][0]["name"] == "lookup_order"


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_create_react_agent_sync(model: ResilientChatModel) -> None:
    from langgraph.prebuilt import create_react_agent

    agent = create_react_agent(model, [lookup_order])

    result = agent.invoke({"messages": [("user", "Where is order A1001?")]})

    assert result["messages"][-1].text == BACKUP_TEXT


class _Recorder(BaseCallbackHandler):
    """A tracer-like handler: records which chat model runs start, and under whom."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, UUID, UUID | None]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append((serialized.get("name", ""), run_id, parent_run_id))


async def test_astream_events_show_each_token_once(
    model: ResilientChatModel, backup: FakeAnthropic
) -> None:
    backup.responder = None
    backup.default = Answer(BACKUP_TEXT)

    events = [event async for event in model.astream_events("Where is A1001?", version="v2")]

    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    assert {e["name"] for e in streamed} == {"ResilientChatModel"}
    assert "".join(e["data"]["chunk"].text for e in streamed) == BACKUP_TEXT


async def test_tracers_see_provider_calls_nested_under_the_model(
    model: ResilientChatModel, backup: FakeAnthropic
) -> None:
    backup.responder = None
    backup.default = Answer(BACKUP_TEXT)
    recorder = _Recorder()

    await model.ainvoke("Where is A1001?", config={"callbacks": [recorder]})

    (outer_name, outer_id, _), *inner = recorder.starts
    assert outer_name == "ResilientChatModel"
    assert [name for name, _, _ in inner] == [
        "ChatOpenAI",
        "ChatOpenAI",
        "ChatOpenAI",
        "TimedChatAnthropic",
    ]
    assert {parent for _, _, parent in inner} == {outer_id}
