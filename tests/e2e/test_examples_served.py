"""`garrison serve` with no project file serves the bundled examples (what `make run` does)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.server import GarrisonProcess


@pytest.fixture(scope="module")
def examples_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GarrisonProcess]:
    process = GarrisonProcess(tmp_path_factory.mktemp("examples"), config=None).start()
    yield process
    process.stop()


@pytest.fixture
async def client(examples_server: GarrisonProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=examples_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


def _ask(text: str) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_serves_the_bundled_graphs(
    client: LangGraphClient, examples_server: GarrisonProcess
) -> None:
    graphs = {
        a["graph_id"] for a in await client.assistants.search(metadata={"created_by": "system"})
    }
    assert graphs == {"support_agent", "workflow"}
    assert (examples_server.data_dir / ".garrison" / "garrison.sqlite").exists()


async def test_support_agent_answers_with_streamed_tokens(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    tokens = [
        part.data[0]["content"]
        async for part in client.runs.stream(
            thread["thread_id"],
            "support_agent",
            input=_ask("Where is my order A1002?"),
            stream_mode="messages-tuple",
        )
        if part.event == "messages" and part.data[1]["langgraph_node"] == "agent"
    ]
    state = await client.threads.get_state(thread["thread_id"])
    answer = state["values"]["messages"][-1]["content"]
    assert "A1002" in answer and len(tokens) > 3


async def test_refund_needs_approval_then_runs(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    paused = await client.runs.wait(
        thread["thread_id"], "support_agent", input=_ask("Please refund order A1001")
    )
    request = paused["__interrupt__"][0]["value"]
    assert request["tool"] == "issue_refund"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "interrupted"
    done = await client.runs.wait(
        thread["thread_id"], "support_agent", command={"resume": {"approved": True}}
    )
    assert "RF-A1001" in done["messages"][-1]["content"]
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"


async def test_declined_refund_is_not_issued(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "support_agent", input=_ask("refund order A1003"))
    done = await client.runs.wait(
        thread["thread_id"],
        "support_agent",
        command={"resume": {"approved": False, "reason": "no"}},
    )
    assert "RF-" not in done["messages"][-1]["content"]


async def test_workflow_streams_its_subgraph(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    names = [
        part.event
        async for part in client.runs.stream(
            thread["thread_id"],
            "workflow",
            input={"text": "Garrison serves LangGraph agents."},
            stream_mode=["updates", "custom"],
            stream_subgraphs=True,
        )
    ]
    assert any(name.startswith("updates|analyze:") for name in names)
    assert any(name.startswith("custom|analyze:") for name in names)
    final = (await client.threads.get_state(thread["thread_id"]))["values"]
    assert final["steps"][0].startswith("ingest") and final["steps"][-1].startswith("publish")
