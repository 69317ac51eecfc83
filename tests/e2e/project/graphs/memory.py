"""Uses the server's long-term store: an async node through `runtime.store`, a sync node
(run on a worker thread) through `get_store()`."""

from typing import TypedDict

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime


class State(TypedDict, total=False):
    namespace: list[str]
    key: str
    text: str
    found: list[str]


async def remember(state: State, runtime: Runtime) -> State:
    assert runtime.store is not None, "the server injects its store"
    await runtime.store.aput(tuple(state["namespace"]), state["key"], {"text": state["text"]})
    return {}


def recall(state: State) -> State:
    items = get_store().search(tuple(state["namespace"]), limit=100)
    return {"found": sorted(item.key for item in items)}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "recall")
builder.add_edge("recall", END)
graph = builder.compile(name="memory")
