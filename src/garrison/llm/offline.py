"""A deterministic, offline LangChain chat model.

:class:`OfflineChatModel` behaves like a provider chat model (tool binding,
``tool_choice``, token streaming, tool-call chunks, usage metadata) but never
leaves the process: a pluggable :data:`ChatPolicy` decides each reply. It is the
default model of Garrison's example agents and of tests that need a chat model.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> model = OfflineChatModel(policy=lambda messages, tools: "Hi there!")
    >>> model.invoke([HumanMessage("hello")]).content
    'Hi there!'
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from garrison.llm._offline_args import extract_tool_args, match_tool
from garrison.llm._offline_policy import (
    ChatPolicy,
    PlannedToolCall,
    PolicyReply,
    ToolSpec,
    default_policy,
    last_human_text,
    trailing_tool_results,
)
from garrison.llm._offline_tool_choice import ToolChoice, ToolRequest, tool_request

__all__ = [
    "ChatPolicy",
    "OfflineChatModel",
    "PlannedToolCall",
    "PolicyReply",
    "ToolChoice",
    "ToolSpec",
    "default_policy",
    "extract_tool_args",
    "last_human_text",
    "match_tool",
    "trailing_tool_results",
]

_TOKEN = re.compile(r"\s*\S+\s*|\s+")


def _fingerprint(messages: Sequence[BaseMessage], tools: Sequence[ToolSpec]) -> str:
    """Hash the conversation content; message ids are random and so left out."""
    payload = [
        {
            "type": message.type,
            "content": message.content,
            "name": message.name,
            "tool_call_id": getattr(message, "tool_call_id", None),
            "tool_calls": [
                {"name": call["name"], "args": call["args"], "id": call["id"]}
                for call in getattr(message, "tool_calls", [])
            ],
        }
        for message in messages
    ]
    payload.append({"tools": [tool.name for tool in tools]})
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def _count_tokens(text: str) -> int:
    return len(text.split())


def _args_json(call: ToolCall) -> str:
    return json.dumps(call["args"], ensure_ascii=False)


def _usage(
    messages: Sequence[BaseMessage], content: str, tool_calls: Sequence[ToolCall]
) -> UsageMetadata:
    """Count whitespace-separated words: deterministic and provider-independent."""
    input_tokens = sum(
        _count_tokens(message.text)
        + sum(_count_tokens(_args_json(call)) for call in getattr(message, "tool_calls", []))
        for message in messages
    )
    output_tokens = _count_tokens(content) + sum(
        _count_tokens(_args_json(call)) for call in tool_calls
    )
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _split_tokens(text: str) -> list[str]:
    """Split into word tokens that keep their whitespace, so they rejoin to ``text``."""
    return _TOKEN.findall(text)


class OfflineChatModel(BaseChatModel):
    """Deterministic chat model that answers from a local policy, never a network.

    Same messages and same bound tools always yield the same reply, including
    tool-call ids (derived from a hash of the conversation). ``tool_choice`` is
    enforced by the model: when a call is forced and the policy did not make it,
    the model calls the forced (or best-matching) tool with arguments extracted
    from the latest human message.

    Attributes:
        model_name: Name reported in ``response_metadata`` and traces.
        policy: Decides each reply; see :data:`ChatPolicy`.
        token_delay_seconds: Pause between streamed chunks, to make demos visible.
    """

    model_name: str = "garrison-offline"
    policy: ChatPolicy = Field(default=default_policy, exclude=True)
    token_delay_seconds: float = Field(default=0.0, ge=0.0)

    @property
    def _llm_type(self) -> str:
        return "garrison-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        policy_name = getattr(self.policy, "__qualname__", type(self.policy).__qualname__)
        return {
            "model_name": self.model_name,
            "policy": f"{getattr(self.policy, '__module__', '')}.{policy_name}",
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "garrison"
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools so the model may call them.

        Args:
            tools: LangChain tools, pydantic models, typed functions or
                OpenAI-format tool dicts.
            tool_choice: ``None``/``"auto"`` lets the policy decide; ``"none"``
                forbids calls; ``"any"``/``"required"``/``True`` forces some
                call; a tool name or ``{"type": "function", "function":
                {"name": ...}}`` forces that tool.
            **kwargs: Further arguments bound to every call.

        Returns:
            The model with ``tools`` and ``tool_choice`` bound.

        Raises:
            ValueError: If ``tool_choice`` names a tool that is not bound.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        request = tool_request({"tools": formatted, "tool_choice": tool_choice})
        if request.mode == "specific":
            tool_choice = {"type": "function", "function": {"name": request.forced}}
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _plan(
        self, messages: list[BaseMessage], request: ToolRequest
    ) -> tuple[str, list[PlannedToolCall]]:
        """Ask the policy for a reply, then enforce the ``tool_choice`` on it."""
        reply = self.policy(messages, request.offered)
        if isinstance(reply, str):
            reply = PolicyReply(content=reply)
        offered = {tool.name for tool in request.offered}
        unknown = sorted({call.name for call in reply.tool_calls} - offered)
        if unknown:
            msg = f"Policy called tools {unknown} that are not offered; offered: {sorted(offered)}."
            raise ValueError(msg)
        if request.mode in {"required", "specific"} and not reply.tool_calls:
            text = last_human_text(messages) or (messages[-1].text if messages else "")
            tool = match_tool(text, request.offered) or request.offered[0]
            return "", [PlannedToolCall(tool.name, extract_tool_args(tool, text))]
        return reply.content, list(reply.tool_calls)

    def _reply(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> AIMessage:
        request = tool_request(kwargs)
        content, planned = self._plan(messages, request)
        for marker in stop or ():
            content = content.split(marker, 1)[0]
        fingerprint = _fingerprint(messages, request.tools)
        tool_calls = [
            ToolCall(
                name=call.name,
                args=dict(call.args),
                id="call_" + hashlib.sha256(f"{fingerprint}:{i}".encode()).hexdigest()[:24],
                type="tool_call",
            )
            for i, call in enumerate(planned)
        ]
        return AIMessage(
            content=content,
            tool_calls=tool_calls,
            usage_metadata=_usage(messages, content, tool_calls),
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            },
        )

    def _chunks(self, message: AIMessage) -> list[ChatGenerationChunk]:
        """Break a reply into word chunks, tool-call chunks and a final metadata chunk."""
        chunks = [AIMessageChunk(content=token) for token in _split_tokens(message.text)]
        for index, call in enumerate(message.tool_calls):
            pieces = _split_tokens(_args_json(call))
            chunks.append(
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(
                            name=call["name"], args=pieces[0], id=call["id"], index=index
                        )
                    ],
                )
            )
            chunks.extend(
                AIMessageChunk(
                    content="", tool_call_chunks=[tool_call_chunk(args=piece, index=index)]
                )
                for piece in pieces[1:]
            )
        chunks.append(
            AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )
        return [ChatGenerationChunk(message=chunk) for chunk in chunks]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, stop, **kwargs))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    # BaseChatModel reports each chunk to the callbacks itself, so the
    # run_manager is deliberately unused by the streaming methods below.
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for position, chunk in enumerate(self._chunks(self._reply(messages, stop, **kwargs))):
            if position and self.token_delay_seconds:
                time.sleep(self.token_delay_seconds)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for position, chunk in enumerate(self._chunks(self._reply(messages, stop, **kwargs))):
            if position and self.token_delay_seconds:
                await asyncio.sleep(self.token_delay_seconds)
            yield chunk
