"""A real Garrison server keeps its agent answering while the primary LLM provider is down.

The project (tests/e2e/llm_project) declares an `e2e` LLM profile: a fake OpenAI-compatible
primary and a fake Anthropic backup, both served over loopback by this test process. The
server reads the profile from its project file; endpoints and keys come from its environment.
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.fakellm import Answer, Behaviour, Fail, FakeAnthropic, FakeOpenAI, FakeToolCall
from tests.support.server import GarrisonProcess

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parent / "llm_project" / "langgraph.json"
PRIMARY_KEY = "primary-key-from-env"
BACKUP_KEY = "backup-key-from-secrets-file"
FINAL_ANSWER = "Order A1001 has shipped and arrives tomorrow."


def _agent_turns(body: dict[str, Any]) -> Behaviour:
    """Call lookup_order first; answer once its result is in the conversation."""
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            return Answer(FINAL_ANSWER)
    return Answer("", tool_calls=(FakeToolCall("lookup_order", {"order_id": "A1001"}),))


@pytest.fixture(scope="module")
def providers() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    primary, backup = FakeOpenAI().start(), FakeAnthropic().start()
    primary.default = Fail(500)
    backup.responder = _agent_turns
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def server(
    providers: tuple[FakeOpenAI, FakeAnthropic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GarrisonProcess]:
    primary, backup = providers
    data_dir = tmp_path_factory.mktemp("garrison-llm")
    key_file = data_dir / "backup-key"
    key_file.write_text(BACKUP_KEY + "\n")
    process = GarrisonProcess(
        data_dir,
        config=PROJECT,
        env={
            "LLM_E2E_PRIMARY_URL": primary.base_url,
            "LLM_E2E_PRIMARY_KEY": PRIMARY_KEY,
            "LLM_E2E_BACKUP_URL": backup.url,
            "LLM_E2E_BACKUP_KEY_FILE": str(key_file),
        },
    ).start()
    yield process
    process.stop()


@pytest.fixture
async def client(server: GarrisonProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


def _text(content: str | list[dict[str, Any]]) -> str:
    """Text of a serialized message; Anthropic answers with tools bound come as blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def _ask(text: str) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": "user", "content": text}]}


async def test_agent_answers_from_the_backup_while_the_primary_is_down(
    client: LangGraphClient,
    server: GarrisonProcess,
    providers: tuple[FakeOpenAI, FakeAnthropic],
) -> None:
    primary, backup = providers
    thread = await client.threads.create()

    result = await client.runs.wait(
        thread["thread_id"], "agent", input=_ask("Where is order A1001?")
    )

    messages = result["messages"]
    assert _text(messages[-1]["content"]) == FINAL_ANSWER
    assert messages[-1]["response_metadata"]["garrison_provider"] == "backup"
    tool_results = [m for m in messages if m["type"] == "tool"]
    assert [m["content"] for m in tool_results] == ["Order A1001 has shipped."]
    # Two model calls, each tried twice on the primary before failing over.
    assert (len(primary.requests), len(backup.requests)) == (4, 2)
    assert primary.requests[0].headers["authorization"] == f"Bearer {PRIMARY_KEY}"
    assert backup.requests[0].headers["authorization"] == f"Bearer {BACKUP_KEY}"
    assert "LLM failover: primary/gpt-e2e gave up (server_error (HTTP 500)" in server.log()


async def test_the_open_breaker_sends_later_runs_straight_to_the_backup(
    client: LangGraphClient,
    server: GarrisonProcess,
    providers: tuple[FakeOpenAI, FakeAnthropic],
) -> None:
    primary, backup = providers
    before = len(primary.requests), len(backup.requests)
    thread = await client.threads.create()

    tokens = [
        part.data[0]["content"]
        async for part in client.runs.stream(
            thread["thread_id"],
            "agent",
            input=_ask("And order A1001 again?"),
            stream_mode="messages-tuple",
        )
        if part.event == "messages" and part.data[1]["langgraph_node"] == "agent"
    ]

    assert "".join(_text(token) for token in tokens) == FINAL_ANSWER
    assert len([token for token in tokens if _text(token)]) == len(FINAL_ANSWER.split())
    assert len(primary.requests) == before[0]  # the breaker opened after 4 failures
    assert len(backup.requests) == before[1] + 2
    assert "circuit breaker of primary/gpt-e2e: closed -> open" in server.log()
