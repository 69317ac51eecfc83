"""Errors raised by resilient chat models.

Graph code catches :class:`AllProvidersFailedError` to degrade gracefully and
:class:`StreamInterruptedError` to tell users an answer was cut short; both derive
from :class:`LLMError`. Configuration problems raise :class:`LLMConfigError`, a
:class:`~garrison.domain.errors.InvalidArgumentError` so the server refuses to start
with a one-line message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from garrison.domain.errors import InvalidArgumentError

__all__ = [
    "AllProvidersFailedError",
    "CircuitOpenError",
    "LLMConfigError",
    "LLMError",
    "ProviderFailure",
    "ProviderTimeoutError",
    "StreamInterruptedError",
]


class LLMError(Exception):
    """Base of the errors a resilient chat model raises on its own account."""


class LLMConfigError(LLMError, InvalidArgumentError):
    """An ``llm`` profile is invalid, unknown, or names a secret that cannot be read."""


class ProviderTimeoutError(LLMError):
    """A provider did not produce its first token, or its whole answer, in time.

    Attributes:
        phase: ``"first_token"`` or ``"total"``.
        seconds: The limit that was exceeded.
    """

    def __init__(self, phase: Literal["first_token", "total"], seconds: float) -> None:
        super().__init__(f"no {phase.replace('_', ' ')} within {seconds:g}s")
        self.phase = phase
        self.seconds = seconds


class CircuitOpenError(LLMError):
    """The provider's circuit breaker is open, so it was not called."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(f"circuit breaker of {provider}/{model} is open")
        self.provider = provider
        self.model = model


class StreamInterruptedError(LLMError):
    """A provider failed after the first token was streamed to the caller.

    Failing over at that point would duplicate the partial output, so the call
    stops here; the original error is the ``__cause__``.
    """

    def __init__(self, provider: str, model: str, reason: str) -> None:
        super().__init__(
            f"{provider}/{model} failed after streaming had started ({reason}); "
            "the partial answer was not completed"
        )
        self.provider = provider
        self.model = model


@dataclass(frozen=True, slots=True)
class ProviderFailure:
    """Why one provider of a failover chain gave up.

    Attributes:
        provider: Provider name, as in metrics labels.
        model: Model name, as in metrics labels.
        kind: Failure kind (see :data:`garrison.llm.failures.FailureKind`).
        attempts: Calls made to this provider (0 when its breaker was open).
        detail: A short description safe to show to users.
    """

    provider: str
    model: str
    kind: str
    attempts: int
    detail: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}: {self.detail} ({self.attempts} attempts)"


class AllProvidersFailedError(LLMError):
    """Every provider of a profile failed or was short-circuited.

    Attributes:
        profile: The profile name (``"custom"`` for explicit model lists).
        failures: One entry per provider, in priority order.
    """

    def __init__(self, profile: str, failures: Sequence[ProviderFailure]) -> None:
        summary = "; ".join(str(failure) for failure in failures)
        super().__init__(f"all LLM providers of profile {profile!r} failed: {summary}")
        self.profile = profile
        self.failures = tuple(failures)
