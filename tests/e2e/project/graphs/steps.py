"""Three async steps with an optional delay each and a side-effect log.

Input: {"delay": seconds, "log_file": path}. Each executed step appends
"<run_id> <step>" to `log_file`, so tests can count re-executions.
"""

import asyncio
import operator
from typing import Annotated, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    delay: float
    log_file: str
    done: Annotated[list[str], operator.add]


def _record(path: str, line: str) -> None:
    # One short append per step: the side-effect log tests count re-executions with.
    with open(path, "a") as log:
        log.write(line + "\n")


def _step(name: str):  # type: ignore[no-untyped-def]
    async def run(state: State, config: RunnableConfig) -> State:
        await asyncio.sleep(state.get("delay", 0.0))
        if state.get("log_file"):
            _record(state["log_file"], f"{config['configurable'].get('run_id', '?')} {name}")
        return {"done": [name]}

    return run


builder = StateGraph(State)
for name in ("one", "two", "three"):
    builder.add_node(name, _step(name))
builder.add_edge(START, "one")
builder.add_edge("one", "two")
builder.add_edge("two", "three")
builder.add_edge("three", END)
graph = builder.compile(name="steps")
