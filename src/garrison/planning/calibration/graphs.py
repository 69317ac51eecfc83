"""The calibration graph `garrison bench profile` measures by default.

`echo` is one async node that copies the input `payload` to `reply` (so a run stores and
returns its payload, like a chat turn stores a question and an answer) and, when asked,
sleeps `hold_seconds` first (so runs stay in flight while the worker's memory is read).
It does no work of its own: what a profile of it measures is Garrison's cost per run.
"""

import asyncio
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class State(TypedDict, total=False):
    payload: str
    reply: str
    hold_seconds: float


async def respond(state: State) -> State:
    hold = state.get("hold_seconds", 0.0)
    if hold:
        await asyncio.sleep(hold)
    return {"reply": state.get("payload", "")}


_builder: StateGraph[State] = StateGraph(State)
_builder.add_node("respond", respond)
_builder.add_edge(START, "respond")
_builder.add_edge("respond", END)
echo: CompiledStateGraph[State] = _builder.compile(name="echo")
