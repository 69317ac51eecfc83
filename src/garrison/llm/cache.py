"""An in-process LRU cache of answers to identical deterministic requests.

A request is cacheable only when every provider that could answer it is
deterministic (temperature 0, or the offline model) and the call does not raise
the temperature; otherwise a cached answer would silently replace sampling.
Answers are stored as the chunks the provider streamed, without message ids, so a
replay streams the same tokens and gets ids of its own run.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage

from garrison.llm.offline import OfflineChatModel
from garrison.llm.providers import Provider

__all__ = ["ResponseCache", "cache_key", "is_cacheable"]


def _deterministic(provider: Provider) -> bool:
    model = provider.chat_model
    return isinstance(model, OfflineChatModel) or getattr(model, "temperature", None) == 0


def is_cacheable(providers: Sequence[Provider], kwargs: Mapping[str, Any]) -> bool:
    """Whether a call's answer may be served from, and stored in, the cache.

    Args:
        providers: The chain that would answer.
        kwargs: The call's keyword arguments (a ``temperature`` here wins).

    Returns:
        True when every provider answers deterministically.
    """
    if "temperature" in kwargs:
        return bool(kwargs["temperature"] == 0)
    return all(_deterministic(provider) for provider in providers)


def cache_key(
    providers: Sequence[Provider],
    messages: Sequence[BaseMessage],
    stop: Sequence[str] | None,
    kwargs: Mapping[str, Any],
) -> str:
    """A digest of everything that determines the answer.

    Args:
        providers: The chain (names and models; a different chain is a different key).
        messages: The conversation; message ids are left out, being random.
        stop: Stop sequences.
        kwargs: Call arguments, tools and ``tool_choice`` included.

    Returns:
        A hex SHA-256 digest.
    """
    payload = {
        "providers": [(provider.name, provider.model_name) for provider in providers],
        "messages": [
            {
                "type": message.type,
                "content": message.content,
                "name": message.name,
                "tool_call_id": getattr(message, "tool_call_id", None),
                "tool_calls": getattr(message, "tool_calls", None),
            }
            for message in messages
        ],
        "stop": list(stop or ()),
        "kwargs": dict(kwargs),
    }
    encoded = json.dumps(payload, sort_keys=True, default=repr).encode()
    return hashlib.sha256(encoded).hexdigest()


class ResponseCache:
    """Thread-safe LRU of streamed answers with a time-to-live.

    Args:
        max_entries: Capacity; the least recently used entry is evicted beyond it.
        ttl_seconds: Age after which an entry is no longer served.
        clock: Monotonic time source.
    """

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, tuple[AIMessageChunk, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> list[AIMessageChunk] | None:
        """The stored chunks for ``key`` (fresh copies), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, chunks = entry
            if self._clock() - stored_at >= self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return [chunk.model_copy(deep=True) for chunk in chunks]

    def put(self, key: str, chunks: Sequence[AIMessageChunk]) -> None:
        """Store an answer's chunks under ``key``."""
        frozen = tuple(chunk.model_copy(update={"id": None}, deep=True) for chunk in chunks)
        with self._lock:
            self._entries[key] = (self._clock(), frozen)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
