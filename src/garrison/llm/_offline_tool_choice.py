"""Normalisation of ``tool_choice`` and the tools bound to one model call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from langchain_core.utils.function_calling import convert_to_openai_tool

from garrison.llm._offline_policy import ToolSpec

__all__ = ["ToolChoice", "ToolChoiceMode", "ToolRequest", "tool_request"]

ToolChoice: TypeAlias = str | bool | dict[str, Any] | None
"""Accepted ``tool_choice`` values: ``None``/``"auto"``, ``"none"``,
``"any"``/``"required"``/``True``, a tool name, or an OpenAI-style
``{"type": "function", "function": {"name": ...}}`` dict."""

ToolChoiceMode = Literal["auto", "none", "required", "specific"]


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """Tools of one call together with the normalised ``tool_choice``."""

    tools: tuple[ToolSpec, ...]
    mode: ToolChoiceMode
    forced: str | None = None

    @property
    def offered(self) -> tuple[ToolSpec, ...]:
        """The tools the policy may call under this ``tool_choice``."""
        if self.mode == "none":
            return ()
        if self.mode == "specific":
            return tuple(tool for tool in self.tools if tool.name == self.forced)
        return self.tools


def _parse_tool_choice(
    choice: ToolChoice, names: Sequence[str]
) -> tuple[ToolChoiceMode, str | None]:
    if choice is None or choice is False or choice == "auto":
        return "auto", None
    if choice == "none":
        return "none", None
    if choice is True or choice == "any" or choice == "required":
        return "required", None
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name") or choice.get("name")
        if not isinstance(name, str):
            msg = f"Unsupported tool_choice {choice!r}: expected a function name."
            raise ValueError(msg)
        choice = name
    if not isinstance(choice, str) or choice not in names:
        msg = f"tool_choice {choice!r} does not name a bound tool; bound tools: {list(names)}."
        raise ValueError(msg)
    return "specific", choice


def tool_request(kwargs: Mapping[str, Any]) -> ToolRequest:
    """Read ``tools`` and ``tool_choice`` from the keyword arguments of a model call.

    Args:
        kwargs: Call arguments; ``tools`` may hold anything ``convert_to_openai_tool``
            accepts.

    Returns:
        The normalised request.

    Raises:
        ValueError: If ``tool_choice`` is malformed, names an unbound tool, or
            forces a call while no tools are bound.
    """
    tools = tuple(
        ToolSpec.from_openai_tool(convert_to_openai_tool(tool))
        for tool in kwargs.get("tools") or ()
    )
    mode, forced = _parse_tool_choice(kwargs.get("tool_choice"), [tool.name for tool in tools])
    if mode in {"required", "specific"} and not tools:
        msg = "tool_choice forces a tool call but no tools are bound."
        raise ValueError(msg)
    return ToolRequest(tools, mode, forced)
