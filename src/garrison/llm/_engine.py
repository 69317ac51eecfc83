"""The failover loops: providers in order, tenacity retries within each, deadlines.

Every provider is called in streaming mode, which gives one definition of "first
token" and of "mid-stream failure" for every call. The caller decides what a
failure after the first token means:

- ``commit_on_first_token=True`` (the caller is streaming): once a token has been
  handed out, a failure raises :class:`StreamInterruptedError`; failing over
  would repeat the partial output.
- ``False`` (the caller wants one message): nothing has been shown yet, so any
  retryable failure, even late in the answer, is retried or failed over.

The async loop enforces every deadline itself; the sync loop relies on the HTTP
client's read timeout for waits and checks the deadlines between chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.messages import AIMessageChunk, BaseMessage

from garrison.llm import metrics
from garrison.llm._attempt import Attempt, Emitter, ProviderCall, fallback_chunk, give_up
from garrison.llm.breaker import CircuitBreakers
from garrison.llm.cache import cache_key, is_cacheable
from garrison.llm.chain import ModelChain
from garrison.llm.errors import ProviderFailure, ProviderTimeoutError
from garrison.llm.providers import Provider
from garrison.llm.retry import async_retrying, retrying

__all__ = ["astream_chain", "stream_chain"]


def _lookup(
    chain: ModelChain,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
) -> tuple[str | None, list[AIMessageChunk] | None]:
    """The cache key of a cacheable call and the cached answer, if any."""
    if chain.cache is None or not is_cacheable(chain.providers, kwargs):
        return None, None
    key = cache_key(chain.providers, messages, stop, kwargs)
    hit = chain.cache.get(key)
    metrics.CACHE_LOOKUPS.labels(chain.profile, "miss" if hit is None else "hit").inc()
    if hit:
        hit[0] = hit[0].model_copy(
            update={"response_metadata": {**hit[0].response_metadata, "garrison_cache": "hit"}}
        )
    return key, hit


def _following(chain: ModelChain, index: int) -> Provider | None:
    return chain.providers[index + 1] if index + 1 < len(chain.providers) else None


class _Deadlines:
    """First-token and total deadlines of one attempt, on a monotonic clock."""

    def __init__(self, chain: ModelChain, now: float) -> None:
        self.timeouts = chain.timeouts
        self.total = now + self.timeouts.total
        self.first_token = min(now + self.timeouts.first_token, self.total)

    def next(self, attempt: Attempt) -> tuple[float, ProviderTimeoutError]:
        """The deadline of the next chunk and the error to raise when it passes."""
        if attempt.first_token_at is None and self.first_token < self.total:
            return self.first_token, ProviderTimeoutError("first_token", self.timeouts.first_token)
        return self.total, ProviderTimeoutError("total", self.timeouts.total)


# --- async -------------------------------------------------------------------------


async def _anext(
    stream: AsyncIterator[BaseMessage], deadline: float, error: ProviderTimeoutError
) -> BaseMessage | None:
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await anext(stream)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if scope.expired():
            raise error from None
        raise


async def _aclose(stream: AsyncIterator[BaseMessage]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class _AsyncOpened:
    """An attempt that got far enough: chunks read so far and, if committed, the rest."""

    def __init__(
        self,
        attempt: Attempt,
        head: list[BaseMessage],
        rest: AsyncIterator[BaseMessage] | None,
        deadlines: _Deadlines,
    ) -> None:
        self.attempt, self.head, self.rest, self.deadlines = attempt, head, rest, deadlines

    async def chunks(self) -> AsyncGenerator[AIMessageChunk, None]:
        emit = Emitter(self.attempt.provider)
        try:
            for chunk in self.head:
                yield emit(chunk)
            while self.rest is not None:
                deadline, error = self.deadlines.next(self.attempt)
                try:
                    chunk_or_end = await _anext(self.rest, deadline, error)
                except Exception as exc:
                    raise self.attempt.interrupted(exc) from exc
                if chunk_or_end is None:
                    self.attempt.succeeded()
                    break
                self.attempt.observe(chunk_or_end)
                yield emit(chunk_or_end)
            for chunk in emit.closing():
                yield chunk
        finally:
            if self.rest is not None:
                await _aclose(self.rest)
                if not self.attempt.done:
                    self.attempt.abandoned()


async def _aopen(
    call: ProviderCall,
    chain: ModelChain,
    breakers: CircuitBreakers,
    messages: Sequence[BaseMessage],
    commit: bool,
) -> _AsyncOpened:
    attempt = Attempt(call.provider, chain, breakers)
    attempt.admit()
    call.attempts += 1
    deadlines = _Deadlines(chain, asyncio.get_running_loop().time())
    stream = aiter(call.runnable.astream(list(messages), call.config, **call.kwargs))
    head: list[BaseMessage] = []
    try:
        while True:
            deadline, error = deadlines.next(attempt)
            chunk = await _anext(stream, deadline, error)
            if chunk is None:
                break
            head.append(chunk)
            if attempt.observe(chunk) and commit:
                return _AsyncOpened(attempt, head, stream, deadlines)
    except BaseException as exc:
        await _aclose(stream)
        attempt.ended(exc)
        raise
    attempt.succeeded()
    return _AsyncOpened(attempt, head, None, deadlines)


async def astream_chain(
    chain: ModelChain,
    breakers: CircuitBreakers,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    callbacks: AsyncCallbackManager | None,
    *,
    commit_on_first_token: bool,
) -> AsyncIterator[AIMessageChunk]:
    """Stream an answer from the first provider of ``chain`` that can give one.

    Args:
        chain: Providers and policies.
        breakers: Breaker states.
        messages: The conversation.
        stop: Stop sequences.
        kwargs: Further call arguments (tools, tool_choice...).
        callbacks: Child callbacks of the caller's run (for tracing inner calls).
        commit_on_first_token: See the module docstring.

    Yields:
        The answer's chunks; the first one names the provider in its metadata.

    Raises:
        AllProvidersFailedError: When every provider failed and the fallback raises.
        StreamInterruptedError: When committed and a provider failed mid-answer.
    """
    key, hit = _lookup(chain, messages, stop, kwargs)
    if hit is not None:
        for chunk in hit:
            yield chunk
        return
    call_kwargs = {**kwargs, **({"stop": stop} if stop else {})}
    failures: list[ProviderFailure] = []
    for index, provider in enumerate(chain.providers):
        call = ProviderCall(provider, call_kwargs, callbacks)
        retry_loop = async_retrying(chain.retry, on_retry=call.on_retry)
        try:
            opened: _AsyncOpened = await retry_loop(
                _aopen, call, chain, breakers, messages, commit_on_first_token
            )
        except Exception as exc:
            failures.append(give_up(call, exc, _following(chain, index)))
            continue
        answer: list[AIMessageChunk] = []
        async with contextlib.aclosing(opened.chunks()) as chunks:
            async for chunk in chunks:
                answer.append(chunk)
                yield chunk
        if key is not None and chain.cache is not None:
            chain.cache.put(key, answer)
        return
    yield fallback_chunk(chain, failures)


# --- sync --------------------------------------------------------------------------


def _next(
    stream: Iterator[BaseMessage], deadline: float, error: ProviderTimeoutError
) -> BaseMessage | None:
    chunk = next(stream, None)
    if time.monotonic() > deadline:
        raise error
    return chunk


def _close(stream: Iterator[BaseMessage]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


class _SyncOpened:
    """The synchronous twin of :class:`_AsyncOpened`."""

    def __init__(
        self,
        attempt: Attempt,
        head: list[BaseMessage],
        rest: Iterator[BaseMessage] | None,
        deadlines: _Deadlines,
    ) -> None:
        self.attempt, self.head, self.rest, self.deadlines = attempt, head, rest, deadlines

    def chunks(self) -> Generator[AIMessageChunk, None, None]:
        emit = Emitter(self.attempt.provider)
        try:
            for chunk in self.head:
                yield emit(chunk)
            while self.rest is not None:
                deadline, error = self.deadlines.next(self.attempt)
                try:
                    chunk_or_end = _next(self.rest, deadline, error)
                except Exception as exc:
                    raise self.attempt.interrupted(exc) from exc
                if chunk_or_end is None:
                    self.attempt.succeeded()
                    break
                self.attempt.observe(chunk_or_end)
                yield emit(chunk_or_end)
            yield from emit.closing()
        finally:
            if self.rest is not None:
                _close(self.rest)
                if not self.attempt.done:
                    self.attempt.abandoned()


def _open(
    call: ProviderCall,
    chain: ModelChain,
    breakers: CircuitBreakers,
    messages: Sequence[BaseMessage],
    commit: bool,
) -> _SyncOpened:
    attempt = Attempt(call.provider, chain, breakers)
    attempt.admit()
    call.attempts += 1
    deadlines = _Deadlines(chain, time.monotonic())
    stream = iter(call.runnable.stream(list(messages), call.config, **call.kwargs))
    head: list[BaseMessage] = []
    try:
        while True:
            deadline, error = deadlines.next(attempt)
            chunk = _next(stream, deadline, error)
            if chunk is None:
                break
            head.append(chunk)
            if attempt.observe(chunk) and commit:
                return _SyncOpened(attempt, head, stream, deadlines)
    except BaseException as exc:
        _close(stream)
        attempt.ended(exc)
        raise
    attempt.succeeded()
    return _SyncOpened(attempt, head, None, deadlines)


def stream_chain(
    chain: ModelChain,
    breakers: CircuitBreakers,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    callbacks: CallbackManager | None,
    *,
    commit_on_first_token: bool,
) -> Iterator[AIMessageChunk]:
    """The synchronous twin of :func:`astream_chain`."""
    key, hit = _lookup(chain, messages, stop, kwargs)
    if hit is not None:
        yield from hit
        return
    call_kwargs = {**kwargs, **({"stop": stop} if stop else {})}
    failures: list[ProviderFailure] = []
    for index, provider in enumerate(chain.providers):
        call = ProviderCall(provider, call_kwargs, callbacks)
        retry_loop = retrying(chain.retry, on_retry=call.on_retry)
        try:
            opened: _SyncOpened = retry_loop(
                _open, call, chain, breakers, messages, commit_on_first_token
            )
        except Exception as exc:
            failures.append(give_up(call, exc, _following(chain, index)))
            continue
        answer: list[AIMessageChunk] = []
        with contextlib.closing(opened.chunks()) as chunks:
            for chunk in chunks:
                answer.append(chunk)
                yield chunk
        if key is not None and chain.cache is not None:
            chain.cache.put(key, answer)
        return
    yield fallback_chunk(chain, failures)
