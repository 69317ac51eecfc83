"""Policy types and the generic default policy of the offline chat model.

A *policy* decides what :class:`~garrison.llm.offline.OfflineChatModel` answers.
It is a plain callable, so tests and example graphs can script a conversation
without touching the streaming and tool-calling machinery of the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from garrison.llm._offline_args import extract_tool_args, match_tool

__all__ = [
    "ChatPolicy",
    "PlannedToolCall",
    "PolicyReply",
    "ToolSpec",
    "default_policy",
    "last_human_text",
    "trailing_tool_results",
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call, as seen by a policy.

    Attributes:
        name: The tool name the model must use in its tool call.
        description: Human-readable description of the tool.
        parameters: JSON schema of the tool arguments (an ``object`` schema).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_openai_tool(cls, tool: Mapping[str, Any]) -> ToolSpec:
        """Build a spec from an OpenAI-format tool (``{"type": "function", ...}``).

        Args:
            tool: The tool as returned by ``convert_to_openai_tool``.

        Returns:
            The corresponding spec.
        """
        function = tool["function"]
        return cls(
            name=function["name"],
            description=function.get("description", ""),
            parameters=function.get("parameters", {}),
        )

    @property
    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        """The JSON-schema properties of the tool arguments."""
        properties: Mapping[str, Mapping[str, Any]] = self.parameters.get("properties", {})
        return properties

    @property
    def required(self) -> frozenset[str]:
        """Names of the required arguments."""
        return frozenset(self.parameters.get("required", ()))


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    """A tool call a policy wants the model to emit.

    Attributes:
        name: Name of a tool offered to the policy.
        args: Arguments of the call; they must be JSON-serialisable.
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyReply:
    """The reply a policy chose: text content and/or tool calls.

    Attributes:
        content: Text of the assistant message (may be empty when calling tools).
        tool_calls: Tool calls to emit, in order.
    """

    content: str = ""
    tool_calls: Sequence[PlannedToolCall] = ()


ChatPolicy: TypeAlias = Callable[[Sequence[BaseMessage], Sequence[ToolSpec]], PolicyReply | str]
"""Decides the reply: receives the conversation and the tools it may call.

Returning a plain ``str`` is shorthand for ``PolicyReply(content=...)``. The
model enforces ``tool_choice`` itself, so policies only see the tools they are
allowed to call and need not know about forcing.
"""

_MAX_QUOTE_CHARS = 200


def last_human_text(messages: Sequence[BaseMessage]) -> str:
    """Return the text of the most recent human message, or ``""`` if there is none.

    Args:
        messages: The conversation, oldest first.

    Returns:
        The stripped text of the latest :class:`HumanMessage`.
    """
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text.strip()
    return ""


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_QUOTE_CHARS else flat[: _MAX_QUOTE_CHARS - 1] + "…"


def _tool_names_by_call_id(messages: Sequence[BaseMessage]) -> dict[str, str]:
    return {
        call["id"]: call["name"]
        for message in messages
        if isinstance(message, AIMessage)
        for call in message.tool_calls
        if call["id"] is not None
    }


def trailing_tool_results(messages: Sequence[BaseMessage]) -> list[tuple[str, ToolMessage]]:
    """Return the tool results that end the conversation, with their tool names.

    Args:
        messages: The conversation, oldest first.

    Returns:
        ``(tool_name, message)`` pairs for the trailing run of tool messages, in
        order; empty when the last message is not a tool result.
    """
    names = _tool_names_by_call_id(messages)
    results: list[tuple[str, ToolMessage]] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append((message.name or names.get(message.tool_call_id, "tool"), message))
    return results[::-1]


def default_policy(messages: Sequence[BaseMessage], tools: Sequence[ToolSpec]) -> PolicyReply:
    """The generic policy used when the model is not given one.

    - After tool results: a short text quoting each result.
    - After a human message that refers to a tool (see :func:`match_tool`): a
      call to that tool with arguments from :func:`extract_tool_args`.
    - Otherwise: a deterministic acknowledgement that quotes the request.

    Args:
        messages: The conversation, oldest first.
        tools: The tools the model may call.

    Returns:
        The reply to emit.
    """
    results = trailing_tool_results(messages)
    if results:
        found = "; ".join(f"{name} returned: {_quote(msg.text)}" for name, msg in results)
        return PolicyReply(content=f"Here is what I found. {found}")
    text = last_human_text(messages)
    if not text:
        return PolicyReply(content="Hello! How can I help you today?")
    if isinstance(messages[-1], HumanMessage) and (tool := match_tool(text, tools)):
        return PolicyReply(tool_calls=[PlannedToolCall(tool.name, extract_tool_args(tool, text))])
    return PolicyReply(
        content=f'You asked: "{_quote(text)}". I am an offline model, so I can only '
        "acknowledge your message; configure a real model for a full answer."
    )
