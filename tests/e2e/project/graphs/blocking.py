"""A synchronous node that blocks its thread (time.sleep), as careless graph code does."""

import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    seconds: float
    slept: float


def block(state: State) -> State:
    seconds = state.get("seconds", 1.0)
    time.sleep(seconds)
    return {"slept": seconds}


builder = StateGraph(State)
builder.add_node("block", block)
builder.add_edge(START, "block")
builder.add_edge("block", END)
graph = builder.compile(name="blocking")
