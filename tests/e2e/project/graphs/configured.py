"""A graph factory: the graph is built per run from the run's config."""

import os
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    greeting: str
    seen: dict


def make_graph(config: RunnableConfig):  # type: ignore[no-untyped-def]
    configurable = config.get("configurable", {})
    prefix = configurable.get("prefix", "Hello")

    def greet(state: State, config: RunnableConfig) -> State:
        conf = config["configurable"]
        return {
            "greeting": f"{prefix}, {conf.get('name', 'world')}",
            "seen": {
                "thread_id": conf.get("thread_id"),
                "assistant_id": conf.get("assistant_id"),
                "graph_id": conf.get("graph_id"),
                "x-trace": conf.get("x-trace"),
                "x-api-key": conf.get("x-api-key"),
                "env": os.environ.get("GARRISON_TEST_PROJECT"),
            },
        }

    builder = StateGraph(State)
    builder.add_node("greet", greet)
    builder.add_edge(START, "greet")
    builder.add_edge("greet", END)
    return builder.compile(name="configured")
