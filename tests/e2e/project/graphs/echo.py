"""One node: counts and echoes its input (with a U+0000 appended when `with_nul` is set,
a character PostgreSQL's JSON cannot hold)."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    value: str
    count: int
    with_nul: bool


def echo(state: State) -> State:
    value = state.get("value", "") + ("\x00" if state.get("with_nul") else "")
    return {"value": value, "count": state.get("count", 0) + 1}


builder = StateGraph(State)
builder.add_node("echo", echo)
builder.add_edge(START, "echo")
builder.add_edge("echo", END)
graph = builder.compile(name="echo")
