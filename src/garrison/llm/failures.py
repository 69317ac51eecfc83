"""Classify what went wrong with a provider call: a pure function over exceptions.

The kind decides everything downstream: whether to retry, whether to fail over to
the next provider, whether the failure counts against the provider's circuit
breaker, and the ``status`` label of ``langgraph_llm_api_calls_total``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from langchain_core import exceptions

from garrison.llm.errors import CircuitOpenError, ProviderTimeoutError, StreamInterruptedError

__all__ = ["Failure", "FailureKind", "classify", "kind_for_status", "parse_retry_after"]

FailureKind = Literal[
    "rate_limited",
    "timeout",
    "server_error",
    "connection_error",
    "auth_error",
    "not_found",
    "client_error",
    "breaker_open",
    "interrupted",
    "error",
]

RETRYABLE_KINDS: frozenset[FailureKind] = frozenset(
    {"rate_limited", "timeout", "server_error", "connection_error"}
)
# Auth and "model not found" are this provider's problem: another provider may work.
_PROVIDER_KINDS: frozenset[FailureKind] = frozenset({"auth_error", "not_found"})


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified provider failure.

    Attributes:
        kind: What went wrong.
        status: The HTTP status, when the provider answered with one.
        retry_after: Seconds the provider asked us to wait (``Retry-After``).
    """

    kind: FailureKind
    status: int | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        """Transient: the same provider may succeed if asked again."""
        return self.kind in RETRYABLE_KINDS

    @property
    def fails_over(self) -> bool:
        """The next provider should be tried once this one gives up."""
        return self.retryable or self.kind in _PROVIDER_KINDS or self.kind == "breaker_open"

    @property
    def counts_against_provider(self) -> bool:
        """The failure is evidence that the provider is unhealthy (breaker input)."""
        return self.retryable or self.kind in _PROVIDER_KINDS

    def describe(self) -> str:
        """A short, secret-free description such as ``"server_error (HTTP 503)"``."""
        return self.kind if self.status is None else f"{self.kind} (HTTP {self.status})"


def kind_for_status(status: int) -> FailureKind:
    """Map an HTTP status to a failure kind.

    Args:
        status: The HTTP status code of a failed provider response.

    Returns:
        The failure kind; 408, 429 and 5xx are the retryable ones.
    """
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in {401, 403}:
        return "auth_error"
    if status == 404:
        return "not_found"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "error"


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Read how long a provider asked us to wait.

    ``retry-after-ms`` (sent by OpenAI) wins over ``Retry-After``, which may hold
    seconds or an HTTP date.

    Args:
        headers: Response headers (case-insensitive mappings such as httpx's work).
        now: The current time, for HTTP-date values.

    Returns:
        Seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    if (millis := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _loaded(name: str, packages: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` of each of ``packages`` that is imported.

    An exception can only come from a package that was imported, so looking in
    ``sys.modules`` spares ``garrison.llm`` importing both provider SDKs up front.
    The SDKs run on ``httpx2`` (openai>=3, anthropic>=2) or ``httpx`` (older).
    """
    return tuple(
        getattr(module, name)
        for package in packages
        if (module := sys.modules.get(package)) is not None and hasattr(module, name)
    )


_SDKS = ("openai", "anthropic")
# LangChain integrations raise these whatever the provider, so other chat models
# (Google, Mistral, Bedrock...) are classified too.
_LANGCHAIN_ERRORS: tuple[tuple[type[BaseException], FailureKind], ...] = (
    (exceptions.ModelConnectionError, "connection_error"),
    (exceptions.ModelRateLimitError, "rate_limited"),
    (exceptions.ModelAPIError, "server_error"),
    (exceptions.ModelAuthenticationError, "auth_error"),
    (exceptions.ModelPermissionDeniedError, "auth_error"),
    (exceptions.ModelNotFoundError, "not_found"),
    (exceptions.ModelInvalidRequestError, "client_error"),
    (exceptions.ContextOverflowError, "client_error"),
)
_HTTP_CLIENTS = ("httpx", "httpx2")


def _status_and_headers(exc: BaseException) -> tuple[int | None, Mapping[str, str]]:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(response, "status_code", None)
    return (
        status if isinstance(status, int) else None,
        headers if isinstance(headers, Mapping) else {},
    )


def classify(exc: BaseException, now: datetime | None = None) -> Failure:
    """Classify an exception raised while calling a provider.

    Args:
        exc: The exception.
        now: The current time, for ``Retry-After`` dates (default: now, UTC).

    Returns:
        The failure; unknown exceptions are ``"error"``, which is neither retried
        nor failed over, so programming errors surface instead of being masked.
    """
    if isinstance(exc, StreamInterruptedError):
        return Failure("interrupted")
    if isinstance(exc, CircuitOpenError):
        return Failure("breaker_open")
    if isinstance(exc, ProviderTimeoutError | TimeoutError | exceptions.ModelTimeoutError):
        return Failure("timeout")
    if isinstance(
        exc, _loaded("APITimeoutError", _SDKS) + _loaded("TimeoutException", _HTTP_CLIENTS)
    ):
        return Failure("timeout")
    status, headers = _status_and_headers(exc)
    # Errors sent as events inside a 200 stream carry status 200: they are handled below.
    if status is not None and status >= 400:
        retry_after = parse_retry_after(headers, now or datetime.now(UTC))
        return Failure(kind_for_status(status), status, retry_after)
    if isinstance(exc, ConnectionError):
        return Failure("connection_error")
    if isinstance(
        exc, _loaded("APIConnectionError", _SDKS) + _loaded("TransportError", _HTTP_CLIENTS)
    ):
        return Failure("connection_error")
    for error_class, kind in _LANGCHAIN_ERRORS:
        if isinstance(exc, error_class):
            return Failure(kind)
    if isinstance(exc, _loaded("APIError", _SDKS)):
        # An error event inside a stream (e.g. "overloaded"): the provider is struggling.
        return Failure("server_error")
    return Failure("error")
