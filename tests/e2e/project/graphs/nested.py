"""A parent graph calling a subgraph; both write custom stream events."""

import operator
from typing import Annotated, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    topic: str
    trail: Annotated[list[str], operator.add]


class Inner(TypedDict, total=False):
    topic: str
    trail: Annotated[list[str], operator.add]


def inner_step(state: Inner) -> Inner:
    get_stream_writer()({"where": "inner", "topic": state.get("topic")})
    return {"trail": ["inner"]}


inner_builder = StateGraph(Inner)
inner_builder.add_node("inner_step", inner_step)
inner_builder.add_edge(START, "inner_step")
inner_builder.add_edge("inner_step", END)
inner = inner_builder.compile(name="inner")


def before(state: State) -> State:
    get_stream_writer()({"where": "outer"})
    return {"trail": ["before"]}


async def run_inner(state: State) -> State:
    result = await inner.ainvoke({"topic": state.get("topic", "")})
    return {"trail": result["trail"]}


builder = StateGraph(State)
builder.add_node("before", before)
builder.add_node("inner", inner)
builder.add_node("after", lambda state: {"trail": ["after"]})
builder.add_edge(START, "before")
builder.add_edge("before", "inner")
builder.add_edge("inner", "after")
builder.add_edge("after", END)
graph = builder.compile(name="nested")
