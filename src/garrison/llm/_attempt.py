"""Bookkeeping shared by the async and sync failover loops.

An :class:`Attempt` is one call to one provider: it asks the breaker for
admission, watches the chunks go by (first token, usage) and, when the call ends,
updates the breaker and the metrics exactly once. The other helpers prepare a
provider call and shape the failover, fallback and cache outcomes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.constants import TAG_NOSTREAM

from garrison.llm import metrics
from garrison.llm.breaker import Admission, CircuitBreakers
from garrison.llm.chain import ModelChain
from garrison.llm.errors import (
    AllProvidersFailedError,
    CircuitOpenError,
    ProviderFailure,
    StreamInterruptedError,
)
from garrison.llm.failures import Failure, classify
from garrison.llm.providers import Provider, adapt_tool_choice

__all__ = [
    "Attempt",
    "Emitter",
    "ProviderCall",
    "fallback_chunk",
    "give_up",
    "is_token",
    "own_chunk",
    "prepare_call",
    "tag_first_chunk",
]

logger = logging.getLogger("garrison.llm")

_REASONING_BLOCKS = frozenset({"thinking", "reasoning"})


def is_token(chunk: BaseMessage) -> bool:
    """A chunk that carries output (text, a tool call, reasoning), not just metadata."""
    if isinstance(chunk, AIMessageChunk) and chunk.tool_call_chunks:
        return True
    if chunk.text:
        return True
    return isinstance(chunk.content, list) and any(
        isinstance(block, dict)
        and block.get("type") in _REASONING_BLOCKS
        and any(block.get(key) for key in ("thinking", "reasoning", "text"))
        for block in chunk.content
    )


def own_chunk(chunk: BaseMessage) -> AIMessageChunk:
    """A copy without the inner run's message id, so the outer run assigns its own."""
    if not isinstance(chunk, AIMessageChunk):
        chunk = AIMessageChunk(content=chunk.content, response_metadata=chunk.response_metadata)
    return chunk.model_copy(update={"id": None})


class Attempt:
    """One call to one provider.

    Args:
        provider: The provider called.
        chain: The chain it belongs to (breaker settings).
        breakers: Where breaker state lives.
    """

    def __init__(self, provider: Provider, chain: ModelChain, breakers: CircuitBreakers) -> None:
        self.provider = provider
        self._chain = chain
        self._breakers = breakers
        self._admission: Admission = "denied"
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self.usage: UsageMetadata | None = None
        self.done = False

    def admit(self) -> None:
        """Ask the breaker; raise :class:`CircuitOpenError` if it refuses."""
        name, model = self.provider.name, self.provider.model_name
        self._admission = self._breakers.admit(name, model, self._chain.breaker)
        if self._admission == "denied":
            raise CircuitOpenError(name, model)
        self.started = time.monotonic()

    def observe(self, chunk: BaseMessage) -> bool:
        """Account for a chunk; return True if it is the first token."""
        if isinstance(chunk, AIMessageChunk) and chunk.usage_metadata:
            self.usage = add_usage(self.usage, chunk.usage_metadata)
        if self.first_token_at is not None or not is_token(chunk):
            return False
        self.first_token_at = time.monotonic()
        metrics.TIME_TO_FIRST_TOKEN.labels(*self._labels).observe(
            self.first_token_at - self.started
        )
        return True

    def succeeded(self) -> None:
        """The provider finished its answer."""
        if self._finish("ok"):
            metrics.CALL_DURATION.labels(*self._labels).observe(time.monotonic() - self.started)
            if self.usage:
                metrics.TOKENS.labels(*self._labels, "input").inc(self.usage["input_tokens"])
                metrics.TOKENS.labels(*self._labels, "output").inc(self.usage["output_tokens"])
            self._breakers.success(*self._labels)

    def failed(self, exc: BaseException) -> Failure:
        """The call raised ``exc``; return its classification."""
        failure = classify(exc)
        if self._finish(failure.kind):
            if failure.counts_against_provider:
                self._breakers.failure(*self._labels, self._chain.breaker)
            elif failure.kind == "client_error":
                # The provider answered, so it is up; the request was at fault.
                self._breakers.success(*self._labels)
            elif self._admission == "probe":
                self._breakers.abandon(*self._labels)
        return failure

    def interrupted(self, exc: Exception) -> StreamInterruptedError:
        """Record a failure after the first token; return the error to raise instead."""
        reason = self.failed(exc).describe()
        logger.warning(
            "LLM stream from %s/%s broke after its first token (%s); not failing over",
            *self._labels,
            reason,
        )
        return StreamInterruptedError(self.provider.name, self.provider.model_name, reason)

    def abandoned(self) -> None:
        """The caller stopped listening (cancelled or closed the stream)."""
        if self._finish("cancelled") and self._admission == "probe":
            self._breakers.abandon(*self._labels)

    def ended(self, exc: BaseException) -> None:
        """Record how an attempt that raised ``exc`` ended."""
        if isinstance(exc, Exception):
            self.failed(exc)
        else:
            self.abandoned()

    @property
    def _labels(self) -> tuple[str, str]:
        return self.provider.name, self.provider.model_name

    def _finish(self, status: str) -> bool:
        if self.done:
            return False
        self.done = True
        metrics.API_CALLS.labels(*self._labels, status).inc()
        return True


class ProviderCall:
    """Everything needed to call one provider for one request, and how it went.

    Args:
        provider: The provider.
        kwargs: The call's keyword arguments; ``tools`` and ``tool_choice`` are
            bound to the provider's model in its own dialect.
        callbacks: The parent run's child callback manager.
    """

    def __init__(
        self,
        provider: Provider,
        kwargs: Mapping[str, Any],
        callbacks: CallbackManager | AsyncCallbackManager | None,
    ) -> None:
        self.provider = provider
        self.runnable, self.kwargs = prepare_call(provider, kwargs)
        # The outer model streams the tokens; provider runs are traced but tagged to
        # stay off LangGraph's `messages` stream, which would otherwise show them twice.
        self.config: RunnableConfig = {
            "callbacks": callbacks,
            "tags": [TAG_NOSTREAM],
            "metadata": {"garrison_provider": provider.name},
        }
        self.attempts = 0

    def on_retry(self, failure: Failure, attempt: int, delay: float) -> None:
        """Log one retry of this provider."""
        logger.info(
            "LLM retry: %s/%s attempt %d failed (%s); retrying in %.2fs",
            self.provider.name,
            self.provider.model_name,
            attempt,
            failure.describe(),
            delay,
        )

    def failure_record(self, failure: Failure) -> ProviderFailure:
        """Summarise this provider's failure for :class:`AllProvidersFailedError`."""
        name, model = self.provider.name, self.provider.model_name
        return ProviderFailure(name, model, failure.kind, self.attempts, failure.describe())


def prepare_call(
    provider: Provider, kwargs: Mapping[str, Any]
) -> tuple[Runnable[LanguageModelInput, BaseMessage], dict[str, Any]]:
    """Bind the call's tools to the provider's model; return it with the other kwargs."""
    call_kwargs = dict(kwargs)
    tools = call_kwargs.pop("tools", None)
    choice = adapt_tool_choice(provider.chat_model, call_kwargs.pop("tool_choice", None))
    if not tools:
        return provider.chat_model, call_kwargs
    options = {} if choice is None else {"tool_choice": choice}
    return provider.chat_model.bind_tools(tools, **options), call_kwargs


def give_up(call: ProviderCall, exc: Exception, following: Provider | None) -> ProviderFailure:
    """Settle a provider's final failure: re-raise it, or log and record a failover.

    Args:
        call: The provider's call.
        exc: The last failure (tenacity re-raises it once it stops retrying).
        following: The next provider of the chain, if any.

    Returns:
        The failure record for :class:`AllProvidersFailedError`.

    Raises:
        Exception: ``exc`` itself when it must not fail over (a bad request, a bug).
    """
    failure = classify(exc)
    if not failure.fails_over:
        raise exc
    provider = call.provider
    metrics.FAILOVERS.labels(provider.name, provider.model_name, failure.kind).inc()
    target = f"{following.name}/{following.model_name}" if following else "no provider left"
    # Skipping a provider whose breaker is open is routine; its opening was a warning.
    level = logging.INFO if failure.kind == "breaker_open" else logging.WARNING
    logger.log(
        level,
        "LLM failover: %s/%s gave up (%s after %d attempts); next: %s",
        provider.name,
        provider.model_name,
        failure.describe(),
        call.attempts,
        target,
    )
    return call.failure_record(failure)


def fallback_chunk(chain: ModelChain, failures: list[ProviderFailure]) -> AIMessageChunk:
    """Apply the chain's fallback once every provider failed.

    Returns:
        The apology message (``"message"`` mode), marked in ``response_metadata``.

    Raises:
        AllProvidersFailedError: In ``"raise"`` mode.
    """
    error = AllProvidersFailedError(chain.profile, failures)
    metrics.FALLBACKS.labels(chain.profile, chain.fallback.mode).inc()
    if chain.fallback.mode == "raise":
        raise error
    logger.error("%s; answering with the fallback message", error)
    return AIMessageChunk(
        content=chain.fallback.message,
        response_metadata={
            "garrison_fallback": True,
            "garrison_profile": chain.profile,
            "garrison_error": str(error),
        },
    )


def tag_first_chunk(chunk: AIMessageChunk, provider: Provider) -> AIMessageChunk:
    """Mark the first chunk of an answer with the provider that gave it."""
    metadata = {
        **chunk.response_metadata,
        "garrison_provider": provider.name,
        "garrison_model": provider.model_name,
    }
    return chunk.model_copy(update={"response_metadata": metadata})


class Emitter:
    """Turns a provider's chunks into the answer's: own ids, the first one tagged.

    Args:
        provider: The provider whose chunks are emitted.
    """

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self.count = 0

    def __call__(self, chunk: BaseMessage) -> AIMessageChunk:
        owned = own_chunk(chunk)
        self.count += 1
        return tag_first_chunk(owned, self._provider) if self.count == 1 else owned

    def closing(self) -> list[AIMessageChunk]:
        """An empty, tagged chunk if the provider streamed nothing at all, else nothing."""
        return [] if self.count else [self(AIMessageChunk(content=""))]
