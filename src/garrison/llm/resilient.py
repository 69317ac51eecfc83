"""``ResilientChatModel``: one LangChain chat model over a failover chain of providers.

Example:
    >>> from garrison.llm import OfflineChatModel, ResilientChatModel
    >>> model = ResilientChatModel(models=[OfflineChatModel(policy=lambda m, t: "Hi!")])
    >>> model.invoke("hello").content
    'Hi!'
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Self

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr, model_validator

from garrison.llm._engine import astream_chain, stream_chain
from garrison.llm.breaker import DEFAULT_BREAKERS, CircuitBreakers
from garrison.llm.chain import ModelChain, new_cache
from garrison.llm.profiles import (
    BreakerSettings,
    CacheSettings,
    FallbackSettings,
    RetrySettings,
    TimeoutSettings,
)
from garrison.llm.providers import Provider
from garrison.llm.registry import DEFAULT_REGISTRY, ProfileRegistry

__all__ = ["ResilientChatModel", "resilient_chat_model"]

_CHAIN_SETTINGS = frozenset({"retry", "breaker", "timeouts", "fallback", "response_cache"})


def _tracing_handlers(handlers: list[BaseCallbackHandler]) -> list[BaseCallbackHandler]:
    """The handlers the provider calls report to: all but the streaming consumers.

    Handlers with ``tap_output_aiter`` (``astream_events``, LangGraph's ``messages``
    stream) already get every token from the resilient model's own run; they would
    get each twice if they also saw the provider calls. Tracers keep seeing both.
    """
    return [handler for handler in handlers if not hasattr(handler, "tap_output_aiter")]


def _child(run_manager: CallbackManagerForLLMRun | None) -> CallbackManager | None:
    """Callbacks for the provider calls, nested under this model's run in traces.

    LLM run managers have no ``get_child``; this mirrors what chain runs do.
    """
    if run_manager is None:
        return None
    manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(_tracing_handlers(run_manager.inheritable_handlers))
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


def _achild(run_manager: AsyncCallbackManagerForLLMRun | None) -> AsyncCallbackManager | None:
    """The async twin of :func:`_child`."""
    if run_manager is None:
        return None
    manager = AsyncCallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(_tracing_handlers(run_manager.inheritable_handlers))
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return manager


class ResilientChatModel(BaseChatModel):
    """A chat model that retries, trips circuit breakers and fails over between providers.

    Build it from a named profile of the project file (see
    :func:`resilient_chat_model`) or from LangChain chat models in priority order.
    It streams tokens (LangGraph's ``messages`` stream mode sees them), binds tools,
    supports ``with_structured_output`` (through tool calling, so every provider
    can serve it) and works in ``create_react_agent`` and custom nodes.

    A failure before the first streamed token fails over; after it, the call
    raises :class:`~garrison.llm.errors.StreamInterruptedError` rather than
    repeat the partial output. Non-streaming calls fail over at any point.

    The first chunk (or the message) names the provider that answered in
    ``response_metadata["garrison_provider"]``. Non-streaming calls also report
    each provider call to tracers as a child run; LangChain gives streaming
    implementations no run manager, so streamed provider calls are not traced.

    Attributes:
        profile_name: Profile to resolve at the first call (excludes ``models``).
        models: Chat models or :class:`~garrison.llm.providers.Provider` objects, in
            priority order (excludes ``profile_name``). Give them ``max_retries=0``.
        retry: Retries per provider (with ``models``; profiles carry their own).
        breaker: Circuit breaker settings (with ``models``).
        timeouts: Time limits per call (with ``models``).
        fallback: What to do when every provider failed (with ``models``).
        response_cache: Cache of deterministic answers (with ``models``).
        breakers: Where breaker states live; shared by the whole process by default.
        registry: Where profiles come from; the server-configured one by default.
    """

    profile_name: str | None = None
    models: list[BaseChatModel | Provider] = Field(default_factory=list, exclude=True)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    fallback: FallbackSettings = Field(default_factory=FallbackSettings)
    response_cache: CacheSettings = Field(default_factory=CacheSettings)
    breakers: CircuitBreakers = Field(default_factory=lambda: DEFAULT_BREAKERS, exclude=True)
    registry: ProfileRegistry = Field(default_factory=lambda: DEFAULT_REGISTRY, exclude=True)

    _chain: ModelChain | None = PrivateAttr(default=None)
    _generation: int = PrivateAttr(default=-1)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.profile_name is None) == (not self.models):
            raise ValueError("give either profile_name or a non-empty list of models")
        overridden = self.model_fields_set & _CHAIN_SETTINGS
        if self.profile_name is not None and overridden:
            msg = f"{sorted(overridden)} come from the profile; set them in the project file"
            raise ValueError(msg)
        return self

    @property
    def _llm_type(self) -> str:
        return "garrison-resilient"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        if self.profile_name is not None:
            return {"profile": self.profile_name}
        return {"providers": [f"{p.name}/{p.model_name}" for p in self.resolve().providers]}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "garrison"
        params["ls_model_name"] = self.profile_name or "custom"
        return params

    def _providers(self) -> list[Provider]:
        return [m if isinstance(m, Provider) else Provider.of(m) for m in self.models]

    def resolve(self) -> ModelChain:
        """The providers and policies this model calls, resolving its profile if needed.

        Profiles resolve at the first call (not at construction), so graphs may
        create models at import time, before the server configured the profiles;
        they resolve again after the profiles are reconfigured.

        Returns:
            The chain.

        Raises:
            LLMConfigError: If the profile is unknown or cannot be built.
        """
        with self._lock:
            if self.profile_name is None:
                if self._chain is None:
                    self._chain = ModelChain(
                        profile="custom",
                        providers=tuple(self._providers()),
                        retry=self.retry,
                        breaker=self.breaker,
                        timeouts=self.timeouts,
                        fallback=self.fallback,
                        cache=new_cache(self.response_cache),
                    )
                return self._chain
            generation = self.registry.generation
            if self._chain is None or self._generation != generation:
                self._chain = self.registry.chain(self.profile_name)
                self._generation = generation
            return self._chain

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; each provider receives them in its own format when called.

        Args:
            tools: LangChain tools, pydantic models, typed functions or
                OpenAI-format tool dicts.
            tool_choice: ``None``/``"auto"``, ``"none"``, ``"any"``/``"required"``/
                ``True``, or a tool name (or OpenAI-style dict naming one).
            **kwargs: Further arguments bound to every call.

        Returns:
            The model with the tools bound.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = stream_chain(
            self.resolve(),
            self.breakers,
            messages,
            stop,
            kwargs,
            _child(run_manager),
            commit_on_first_token=False,
        )
        return generate_from_stream(ChatGenerationChunk(message=chunk) for chunk in chunks)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        chunks = [
            ChatGenerationChunk(message=chunk)
            async for chunk in astream_chain(
                self.resolve(),
                self.breakers,
                messages,
                stop,
                kwargs,
                _achild(run_manager),
                commit_on_first_token=False,
            )
        ]
        return generate_from_stream(iter(chunks))

    # BaseChatModel reports each chunk to the callbacks (LangGraph's `messages`
    # stream mode among them), so the streaming methods only yield.
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in stream_chain(
            self.resolve(),
            self.breakers,
            messages,
            stop,
            kwargs,
            _child(run_manager),
            commit_on_first_token=True,
        ):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in astream_chain(
            self.resolve(),
            self.breakers,
            messages,
            stop,
            kwargs,
            _achild(run_manager),
            commit_on_first_token=True,
        ):
            yield ChatGenerationChunk(message=chunk)


def resilient_chat_model(profile: str) -> ResilientChatModel:
    """The resilient chat model of a named profile of the project file.

    Safe to call at import time: the profile is looked up at the first call.

    Args:
        profile: A key of ``llm.profiles`` in ``garrison.json`` / ``langgraph.json``.

    Returns:
        The model.
    """
    return ResilientChatModel(profile_name=profile)
