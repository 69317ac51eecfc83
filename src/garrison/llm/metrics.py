"""Prometheus metrics of LLM calls, in the default registry.

``provider`` and ``model`` labels are the provider's name and model name as shown
by :class:`~garrison.llm.providers.Provider`; ``status`` of
``langgraph_llm_api_calls_total`` is ``ok`` or a failure kind from
:data:`garrison.llm.failures.FailureKind` (plus ``cancelled``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "API_CALLS",
    "BREAKER_STATE",
    "CACHE_LOOKUPS",
    "CALL_DURATION",
    "FAILOVERS",
    "FALLBACKS",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)

API_CALLS = Counter(
    "langgraph_llm_api_calls",
    "Calls made to LLM providers (one per attempt), by outcome.",
    ["provider", "model", "status"],
)
CALL_DURATION = Histogram(
    "langgraph_llm_api_call_duration_seconds",
    "Duration of successful LLM provider calls, request to last token.",
    ["provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "langgraph_llm_time_to_first_token_seconds",
    "Time from an LLM provider request to its first streamed token.",
    ["provider", "model"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter(
    "langgraph_llm_tokens",
    "Tokens reported by LLM providers, by type (input or output).",
    ["provider", "model", "type"],
)
BREAKER_STATE = Gauge(
    "langgraph_llm_circuit_breaker_state",
    "Circuit breaker of an LLM provider: 0 closed, 1 half-open, 2 open.",
    ["provider", "model"],
)
FAILOVERS = Counter(
    "langgraph_llm_failovers",
    "Times a provider was given up on for a call and the next one tried, by reason.",
    ["provider", "model", "reason"],
)
FALLBACKS = Counter(
    "langgraph_llm_fallbacks",
    "Calls that found every provider failed and used the profile's fallback.",
    ["profile", "mode"],
)
CACHE_LOOKUPS = Counter(
    "langgraph_llm_cache_lookups",
    "Response cache lookups of deterministic requests, by result (hit or miss).",
    ["profile", "result"],
)
