"""The server starts, serves the project's graphs and runs one of them end to end."""

from langgraph_sdk.client import LangGraphClient


async def test_system_assistants_exist_for_every_graph(client: LangGraphClient) -> None:
    assistants = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    graphs = {a["graph_id"] for a in assistants}
    assert {"echo", "steps", "approval", "failing", "nested", "chat", "configured"} <= graphs


async def test_wait_returns_final_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    output = await client.runs.wait(thread["thread_id"], "echo", input={"value": "hi", "count": 1})
    assert output == {"value": "hi", "count": 2}
