"""Run the example graphs under examples/ with an in-memory checkpointer."""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.types import Command

from garrison.llm import OfflineChatModel, ResilientChatModel, configure_profiles
from garrison.llm.registry import DEFAULT_REGISTRY
from tests.support.fakellm import Fail, FakeOpenAI, running

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCUMENT = (
    "Garrison runs LangGraph graphs. Graphs stream events to clients. "
    "Clients resume interrupted graphs. Servers persist threads and checkpoints."
)


def _llm_config() -> dict[str, Any]:
    llm: dict[str, Any] = json.loads((EXAMPLES / "langgraph.json").read_text())["llm"]
    return llm


@pytest.fixture(scope="module")
def examples_path() -> Iterator[Path]:
    """Put examples/ on sys.path and install its LLM profiles, as the server does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLES))
        configure_profiles(_llm_config())
        yield EXAMPLES
    DEFAULT_REGISTRY.reset()


@pytest.fixture(scope="module")
def support_agent(examples_path: Path) -> ModuleType:
    return importlib.import_module("support_agent.graph")


@pytest.fixture(scope="module")
def workflow(examples_path: Path) -> ModuleType:
    return importlib.import_module("workflow.graph")


def _with_memory(graph: Pregel[Any, Any, Any, Any]) -> Pregel[Any, Any, Any, Any]:
    return graph.copy(update={"checkpointer": InMemorySaver()})


def _thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


def _user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_langgraph_json_graphs_load_from_their_paths(examples_path: Path) -> None:
    config = json.loads((examples_path / "langgraph.json").read_text())

    assert config["dependencies"] == ["."]
    for graph_id, spec in config["graphs"].items():
        file_name, attribute = spec.split(":")
        module_spec = importlib.util.spec_from_file_location(
            f"_garrison_example_{graph_id}", examples_path / file_name
        )
        assert module_spec is not None
        assert module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        graph = getattr(module, attribute)
        assert isinstance(graph, Pregel)
        assert graph.name == graph_id
        assert graph.checkpointer is None
        assert graph.store is None


async def test_support_agent_answers_a_knowledge_base_question(support_agent: ModuleType) -> None:
    graph = _with_memory(support_agent.graph)

    result = await graph.ainvoke(_user("How long does shipping take?"), _thread("kb"))

    calls = [
        c["name"] for m in result["messages"] if isinstance(m, AIMessage) for c in m.tool_calls
    ]
    assert calls == ["search_knowledge_base"]
    assert "Standard shipping takes 3-5 business days" in result["messages"][-1].text


async def test_support_agent_looks_up_an_order(support_agent: ModuleType) -> None:
    graph = _with_memory(support_agent.graph)

    result = await graph.ainvoke(_user("Where is my order a1002?"), _thread("order"))

    tool_results = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_results] == ["lookup_order"]
    assert "Mechanical keyboard, status shipped" in result["messages"][-1].text


@pytest.mark.parametrize("decision", [{"approved": True}, "yes", True])
async def test_approved_refund_runs_the_refund_tool(
    support_agent: ModuleType, decision: object
) -> None:
    graph, thread = _with_memory(support_agent.graph), _thread("refund-ok")

    paused = await graph.ainvoke(_user("Please refund $20 for order A1001"), thread)

    (pending,) = paused["__interrupt__"]
    assert pending.value["tool"] == "issue_refund"
    assert pending.value["args"] == {"order_id": "A1001", "amount": 20.0}
    assert pending.value["description"] == "Refund $20.00 for order A1001."
    assert not any(isinstance(m, ToolMessage) for m in paused["messages"])

    result = await graph.ainvoke(Command(resume=decision), thread)

    (refund,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert refund.name == "issue_refund"
    assert refund.text == "Refund of $20.00 issued for order A1001 (reference RF-A1001)."
    assert "issued" in result["messages"][-1].text
    assert "__interrupt__" not in result


@pytest.mark.parametrize("decision", [{"approved": False, "reason": "too late"}, "no", False])
async def test_declined_refund_does_not_run_the_refund_tool(
    support_agent: ModuleType, decision: object
) -> None:
    graph, thread = _with_memory(support_agent.graph), _thread("refund-no")
    paused = await graph.ainvoke(_user("I want a refund for order A1003"), thread)
    assert paused["__interrupt__"][0].value["description"] == "Refund $35.50 for order A1003."

    result = await graph.ainvoke(Command(resume=decision), thread)

    (answer,) = [m for m in result["messages"] if isinstance(m, ToolMessage)]
    assert answer.status == "error"
    assert answer.text.startswith("The refund was declined")
    assert "issued for order" not in " ".join(m.text for m in result["messages"])
    assert isinstance(result["messages"][-1], AIMessage)
    assert not result["messages"][-1].tool_calls


async def test_messages_stream_mode_streams_model_tokens(support_agent: ModuleType) -> None:
    graph = _with_memory(support_agent.graph)

    chunks: list[AIMessageChunk] = []
    async for event in graph.astream(
        _user("Where is order A1001?"), _thread("tokens"), stream_mode="messages"
    ):
        message, metadata = cast("tuple[BaseMessage, dict[str, Any]]", event)
        if isinstance(message, AIMessageChunk) and metadata["langgraph_node"] == "agent":
            chunks.append(message)
    state = await graph.aget_state(_thread("tokens"))

    text_chunks = [chunk.text for chunk in chunks if chunk.text]
    assert len(text_chunks) > 5
    assert "".join(text_chunks) == state.values["messages"][-1].text
    assert any(chunk.tool_call_chunks for chunk in chunks)


@pytest.fixture
def model_module(support_agent: ModuleType) -> Iterator[ModuleType]:
    yield importlib.import_module("support_agent.model")
    configure_profiles(_llm_config())  # drop chains resolved with a test's environment


def test_chat_model_defaults_to_the_offline_model(
    model_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(model_module.MODEL_ENV_VAR, raising=False)
    configure_profiles(_llm_config())

    model = model_module.chat_model()

    assert isinstance(model, ResilientChatModel)
    (provider,) = model.resolve().providers
    assert isinstance(provider.chat_model, OfflineChatModel)
    assert (
        provider.chat_model.policy is importlib.import_module("support_agent.policy").support_policy
    )


def test_one_env_var_puts_a_real_model_first(
    model_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(model_module.MODEL_ENV_VAR, "gpt-4o-mini")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    configure_profiles(_llm_config())

    first, fallback = model_module.chat_model().resolve().providers

    assert (first.name, first.model_name) == ("openai", "gpt-4o-mini")
    assert isinstance(fallback.chat_model, OfflineChatModel)


async def test_the_offline_model_takes_over_when_the_real_one_fails(
    support_agent: ModuleType, model_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(FakeOpenAI()) as endpoint:
        endpoint.default = Fail(401)  # e.g. a revoked key: no retry, straight to the fallback
        monkeypatch.setenv(model_module.MODEL_ENV_VAR, "gpt-4o-mini")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-revoked")
        monkeypatch.setenv("OPENAI_BASE_URL", endpoint.base_url)
        configure_profiles(_llm_config())

        result = await _with_memory(support_agent.graph).ainvoke(
            _user("Where is my order a1002?"), _thread("fallback")
        )

    assert len(endpoint.requests) >= 1
    assert "Mechanical keyboard, status shipped" in result["messages"][-1].text


async def test_workflow_runs_every_step_through_the_subgraph(workflow: ModuleType) -> None:
    graph = _with_memory(workflow.graph)

    result = await graph.ainvoke({"text": DOCUMENT}, _thread("doc"))

    assert [step.split(":")[0] for step in result["steps"]] == [
        "ingest",
        "extract_keywords",
        "score",
        "summarize",
        "publish",
    ]
    assert result["keywords"][0] == "graphs"
    assert 0 < result["score"] <= 1
    assert result["title"] == "Garrison runs LangGraph graphs"
    assert result["document_id"].startswith("doc-")
    assert result["summary"].startswith("Garrison runs LangGraph graphs.")


async def test_workflow_stream_shows_subgraph_namespace_and_custom_events(
    workflow: ModuleType,
) -> None:
    graph = _with_memory(workflow.graph)

    events = [
        cast("tuple[tuple[str, ...], str, Any]", event)
        async for event in graph.astream(
            {"text": DOCUMENT},
            _thread("doc-stream"),
            stream_mode=["updates", "custom"],
            subgraphs=True,
        )
    ]

    custom = [(ns[:1], payload["step"]) for ns, mode, payload in events if mode == "custom"]
    assert [step for _, step in custom] == [
        "ingest",
        "extract_keywords",
        "score",
        "summarize",
        "publish",
    ]
    assert custom[0][0] == ()
    assert custom[1][0][0].startswith("analyze:")
    subgraph_updates = [
        next(iter(payload))
        for ns, mode, payload in events
        if mode == "updates" and ns and ns[0].startswith("analyze:")
    ]
    assert subgraph_updates == ["extract_keywords", "score"]
