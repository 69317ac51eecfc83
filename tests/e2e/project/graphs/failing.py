"""Fails in its second node: ValueError (shown to clients) or a private error."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    kind: str
    progress: str


class SecretLeak(Exception):
    """Its message must never reach a client."""


def first(state: State) -> State:
    return {"progress": "first done"}


def second(state: State) -> State:
    if state.get("kind") == "private":
        raise SecretLeak("password=hunter2")
    raise ValueError("boom: the second node failed")


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile(name="failing")
