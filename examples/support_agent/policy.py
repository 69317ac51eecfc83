"""The scripted brain of the support agent when it runs on the offline model.

Rules, checked against the latest human message:

- mentions "refund" and an order id (``A1001``) -> ``issue_refund`` (with the
  dollar amount if one is given, else a full refund);
- mentions an order id -> ``lookup_order``;
- anything else -> ``search_knowledge_base`` with the whole message.

After tool results it answers with a final message built from those results.
"""

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import BaseTool

from garrison.llm import (
    PlannedToolCall,
    PolicyReply,
    ToolSpec,
    last_human_text,
    trailing_tool_results,
)
from support_agent.tools import issue_refund, lookup_order, search_knowledge_base

_ORDER_ID = re.compile(r"\b[A-Z]\d{4}\b", re.IGNORECASE)
_AMOUNT = re.compile(r"\$\s?(\d+(?:\.\d{1,2})?)|(\d+\.\d{2})\b")

_RESULT_INTROS = {
    "search_knowledge_base": "Here is what our help center says. ",
    "lookup_order": "I looked up your order. ",
    "issue_refund": "",
}


def _call(tool: BaseTool, **args: object) -> PolicyReply:
    return PolicyReply(tool_calls=[PlannedToolCall(tool.name, args)])


def support_policy(messages: Sequence[BaseMessage], tools: Sequence[ToolSpec]) -> PolicyReply:
    """Choose the support agent's next step deterministically.

    Args:
        messages: The conversation, oldest first.
        tools: The tools the model may call.

    Returns:
        A tool call for a new request, or the final answer after tool results.
    """
    results = trailing_tool_results(messages)
    if results:
        answer = " ".join(_RESULT_INTROS.get(name, "") + msg.text for name, msg in results)
        return PolicyReply(content=f"{answer} Is there anything else I can help with?")

    text = last_human_text(messages)
    if not text or not isinstance(messages[-1], HumanMessage):
        return PolicyReply(content="Hi! I can look up orders, issue refunds and answer questions.")
    available = {tool.name for tool in tools}
    order = _ORDER_ID.search(text)
    if order and "refund" in text.lower() and issue_refund.name in available:
        amount = _AMOUNT.search(text)
        if amount is None:
            return _call(issue_refund, order_id=order.group().upper())
        value = float(amount.group(1) or amount.group(2))
        return _call(issue_refund, order_id=order.group().upper(), amount=value)
    if order and lookup_order.name in available:
        return _call(lookup_order, order_id=order.group().upper())
    if search_knowledge_base.name in available:
        return _call(search_knowledge_base, query=text)
    return PolicyReply(content=f'I cannot help with "{text}" right now.')
