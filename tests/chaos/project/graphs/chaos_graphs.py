"""Graphs for fault tests. Every node appends one JSON line per phase to the side-effect
log named by GARRISON_CHAOS_EFFECTS, so tests can see which process ran which task of
which attempt, and count re-executions.

- fanout: a -> (fast || slow) -> c, the graph of the kill -9 experiment; `slow` sleeps
  `slow_seconds` between its start and end lines.
- steps: `count` sequential supersteps of `step_seconds` each; each step also writes
  `{"step": n}` to the `custom` stream mode as it starts.
- crasher: its only node kills its own process (SIGKILL) on every attempt.
- quick: one node, no sleep (soak and throughput runs).
"""

import json
import operator
import os
import signal
import time
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


def record(config: RunnableConfig, node: str, phase: str, **extra: Any) -> None:
    metadata = config.get("metadata", {})
    entry = {
        "run_id": config.get("configurable", {}).get("run_id"),
        "node": node,
        "phase": phase,
        "task_id": metadata.get("langgraph_checkpoint_ns", "").rpartition(":")[2],
        "attempt": metadata.get("run_attempt"),
        "pid": os.getpid(),
        "at": time.time(),
        **extra,
    }
    # One write of one line in append mode: lines from concurrent processes never mix,
    # and the kernel keeps the line even if the process is SIGKILLed right after.
    with open(os.environ["GARRISON_CHAOS_EFFECTS"], "a") as log:
        log.write(json.dumps(entry) + "\n")


class FanoutState(TypedDict, total=False):
    slow_seconds: float
    visits: Annotated[list[str], operator.add]


def _visit(name: str):  # type: ignore[no-untyped-def]
    def node(state: FanoutState, config: RunnableConfig) -> FanoutState:
        record(config, name, "start")
        if name == "slow":
            time.sleep(state.get("slow_seconds", 0.0))
        record(config, name, "end")
        return {"visits": [name]}

    return node


_fanout = StateGraph(FanoutState)
for _name in ("a", "fast", "slow", "c"):
    _fanout.add_node(_name, _visit(_name))
_fanout.add_edge(START, "a")
_fanout.add_edge("a", "fast")
_fanout.add_edge("a", "slow")
_fanout.add_edge(["fast", "slow"], "c")
_fanout.add_edge("c", END)
fanout = _fanout.compile(name="fanout")


class StepsState(TypedDict, total=False):
    count: int
    step_seconds: float
    done: int


def _step(state: StepsState, config: RunnableConfig) -> StepsState:
    number = state.get("done", 0) + 1
    record(config, "step", "start", step=number)
    get_stream_writer()({"step": number})
    time.sleep(state.get("step_seconds", 0.0))
    record(config, "step", "end", step=number)
    return {"done": number}


def _more(state: StepsState) -> str:
    return "step" if state.get("done", 0) < state.get("count", 1) else END


_steps = StateGraph(StepsState)
_steps.add_node("step", _step)
_steps.add_edge(START, "step")
_steps.add_conditional_edges("step", _more, ["step", END])
steps = _steps.compile(name="steps")


class CrasherState(TypedDict, total=False):
    note: str


def _boom(state: CrasherState, config: RunnableConfig) -> CrasherState:
    record(config, "boom", "start")
    os.kill(os.getpid(), signal.SIGKILL)
    return {"note": "unreachable"}


_crasher = StateGraph(CrasherState)
_crasher.add_node("boom", _boom)
_crasher.add_edge(START, "boom")
_crasher.add_edge("boom", END)
crasher = _crasher.compile(name="crasher")


class QuickState(TypedDict, total=False):
    n: int
    echoed: int


def _echo(state: QuickState, config: RunnableConfig) -> QuickState:
    record(config, "echo", "end", n=state.get("n"))
    return {"echoed": state.get("n", 0)}


_quick = StateGraph(QuickState)
_quick.add_node("echo", _echo)
_quick.add_edge(START, "echo")
_quick.add_edge("echo", END)
quick = _quick.compile(name="quick")
