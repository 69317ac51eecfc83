"""Customer-support chat agent with tools and human approval for refunds.

Flow: ``agent`` (chat model with tools) -> ``tools`` -> ``agent`` ... until the
model answers without tool calls. Calls to sensitive tools (``issue_refund``)
first go through ``human_approval``, which pauses the run with an interrupt.

Input: ``{"messages": [{"role": "user", "content": "Where is my order A1002?"}]}``.

Resume an approval interrupt with ``Command(resume=...)`` where the value is
``{"approved": true}``, ``"yes"`` or ``true`` to approve; anything else (e.g.
``{"approved": false, "reason": "..."}``) declines and the refund does not run.
"""

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolCall, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from support_agent.model import chat_model
from support_agent.tools import ORDERS, SENSITIVE_TOOLS, TOOLS

SYSTEM_PROMPT = (
    "You are the customer-support agent of Acme Gadgets. Use the tools to search the "
    "help center, look up orders (ids look like A1001) and issue refunds. Be brief."
)

_model = chat_model().bind_tools(TOOLS)
_tools_by_name = {tool.name: tool for tool in TOOLS}
_APPROVE_WORDS = frozenset({"yes", "y", "approve", "approved", "ok", "true"})


def _last_ai_message(messages: Sequence[BaseMessage]) -> AIMessage:
    return next(m for m in reversed(messages) if isinstance(m, AIMessage))


def _pending_calls(messages: Sequence[BaseMessage]) -> list[ToolCall]:
    """Tool calls of the last AI message that have no tool result yet."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [c for c in _last_ai_message(messages).tool_calls if c["id"] not in answered]


def _is_approved(decision: Any) -> bool:
    if isinstance(decision, dict):
        decision = decision.get("approved", False)
    if isinstance(decision, str):
        return decision.strip().lower() in _APPROVE_WORDS
    return decision is True


def _describe(call: ToolCall) -> str:
    order_id = str(call["args"].get("order_id", "?")).upper()
    amount = call["args"].get("amount")
    if amount is None:
        order = ORDERS.get(order_id)
        amount = order["total"] if order else None
    money = f"${float(amount):.2f}" if amount is not None else "the full amount"
    return f"Refund {money} for order {order_id}."


async def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
    """Ask the chat model for the next step."""
    response = await _model.ainvoke([SystemMessage(SYSTEM_PROMPT), *state["messages"]])
    return {"messages": [response]}


def route_after_agent(state: MessagesState) -> str:
    """Send tool calls to approval (if any is sensitive) or to execution."""
    calls = _last_ai_message(state["messages"]).tool_calls
    if not calls:
        return END
    if any(call["name"] in SENSITIVE_TOOLS for call in calls):
        return "human_approval"
    return "tools"


def human_approval(state: MessagesState) -> Command[Literal["tools", "agent"]]:
    """Pause for a human decision on each sensitive tool call.

    Declined calls are answered with a tool message right away, so every tool
    call keeps a matching result and the conversation stays valid.
    """
    declined: list[BaseMessage] = []
    for call in _pending_calls(state["messages"]):
        if call["name"] not in SENSITIVE_TOOLS:
            continue
        decision = interrupt(
            {
                "type": "approval_request",
                "tool": call["name"],
                "tool_call_id": call["id"],
                "args": call["args"],
                "description": _describe(call),
                "how_to_resume": '{"approved": true} or {"approved": false, "reason": "..."}',
            }
        )
        if not _is_approved(decision):
            reason = decision.get("reason") if isinstance(decision, dict) else None
            declined.append(
                ToolMessage(
                    content="The refund was declined by a human reviewer and was not issued."
                    + (f" Reason: {reason}" if reason else ""),
                    tool_call_id=call["id"],
                    name=call["name"],
                    status="error",
                )
            )
    remaining = len(_pending_calls(state["messages"])) - len(declined)
    return Command(goto="tools" if remaining else "agent", update={"messages": declined})


async def tools(state: MessagesState) -> dict[str, list[BaseMessage]]:
    """Run every tool call of the last AI message that has no result yet."""
    results = [
        await _tools_by_name[call["name"]].ainvoke(call)
        for call in _pending_calls(state["messages"])
    ]
    return {"messages": results}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("human_approval", human_approval)
builder.add_node("tools", tools)
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", route_after_agent, ["human_approval", "tools", END])
builder.add_edge("tools", "agent")

graph = builder.compile(name="support_agent")
"""The compiled agent; the server supplies the checkpointer and store."""
