"""Asks a human with interrupt(), then records the answer."""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    request: str
    answer: str
    status: str


def prepare(state: State) -> State:
    return {"status": "waiting"}


def ask(state: State) -> State:
    answer = interrupt({"question": f"Approve {state.get('request', 'this')}?"})
    return {"answer": str(answer), "status": "answered"}


def finish(state: State) -> State:
    return {"status": "done"}


builder = StateGraph(State)
builder.add_node("prepare", prepare)
builder.add_node("ask", ask)
builder.add_node("finish", finish)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "ask")
builder.add_edge("ask", "finish")
builder.add_edge("finish", END)
graph = builder.compile(name="approval")
