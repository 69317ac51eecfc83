"""A tool-calling agent on the `e2e` LLM profile (primary: fake OpenAI, backup: fake Anthropic)."""

from langchain_core.messages import BaseMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from garrison.llm import resilient_chat_model


@tool
def lookup_order(order_id: str) -> str:
    """Look up the status of an order by its id."""
    return f"Order {order_id} has shipped."


# Created at import time, before the server has read the profiles: resolved at first call.
model = resilient_chat_model("e2e").bind_tools([lookup_order])


async def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([lookup_order]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile(name="agent")
