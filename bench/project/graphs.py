"""Benchmark graphs: as little work per node as LangGraph allows, so that what the
benchmark measures is the runtime around the graph (HTTP, queue, storage, checkpoints),
not the graph itself.

Nodes are `async def` on purpose: LangGraph runs sync nodes in a thread pool when the
graph is awaited, which would add a thread hop (and its noise) to every step.
"""

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    count: int


async def bump(state: State) -> State:
    return {"count": state.get("count", 0) + 1}


def build_chain(length: int) -> StateGraph[State]:
    """START -> step_1 -> ... -> step_<length> -> END, every node adding one to `count`."""
    builder: StateGraph[State] = StateGraph(State)
    previous = START
    for index in range(1, length + 1):
        name = f"step_{index}"
        builder.add_node(name, bump)
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


# Final `count` for input {"count": 0}: the benchmark checks it to catch silent failures.
NODE_COUNTS: dict[str, int] = {"one_node": 1, "five_node": 5}

one_node: CompiledStateGraph[State] = build_chain(1).compile(name="one_node")
five_node: CompiledStateGraph[State] = build_chain(5).compile(name="five_node")
