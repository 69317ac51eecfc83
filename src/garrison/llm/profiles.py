"""The ``llm`` section of ``garrison.json`` / ``langgraph.json``: named model profiles.

Example::

    {"llm": {"profiles": {"support": {
        "providers": [
            {"kind": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
            {"kind": "anthropic", "model": "claude-3-5-haiku-latest"},
            {"kind": "offline"}
        ],
        "retry": {"max_attempts": 3},
        "breaker": {"failure_threshold": 5, "cooldown_seconds": 30},
        "timeouts": {"connect": 5, "first_token": 30, "total": 120},
        "fallback": {"mode": "message"},
        "cache": {"enabled": false}
    }}}}

Secrets never live in the file: providers name an environment variable
(``api_key_env``) or a file (``api_key_file``). String values may reference the
environment as ``${NAME}`` or ``${NAME:-default}``, and a provider with
``enabled_if_env`` is only used when that variable is set and not empty; both are
resolved when a profile is first used (see :mod:`garrison.llm.registry`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

__all__ = [
    "DEFAULT_FALLBACK_MESSAGE",
    "AnthropicProvider",
    "AzureOpenAIProvider",
    "BreakerSettings",
    "CacheSettings",
    "FallbackSettings",
    "LLMSettings",
    "OfflineProvider",
    "OpenAIProvider",
    "ProfileSettings",
    "ProviderSettings",
    "RetrySettings",
    "TimeoutSettings",
]

DEFAULT_FALLBACK_MESSAGE = (
    "Sorry, I cannot answer right now because the AI service is unavailable. "
    "Please try again in a moment."
)


class _Strict(BaseModel):
    # Typos in a config file must fail loudly, not silently fall back to defaults.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RetrySettings(_Strict):
    """Retries against one provider before failing over.

    Attributes:
        max_attempts: Calls per provider, the first included.
        initial_delay: Backoff ceiling (seconds) before the second attempt.
        multiplier: Growth of the ceiling per attempt.
        max_delay: Largest backoff ceiling; the wait is uniform in [0, ceiling].
        max_retry_after: Longest ``Retry-After`` honoured; longer asks fail over.
    """

    max_attempts: int = Field(default=3, ge=1, le=10)
    initial_delay: float = Field(default=0.5, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_delay: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=30.0, ge=0)


class BreakerSettings(_Strict):
    """Per-provider circuit breaker.

    Attributes:
        failure_threshold: Failures within ``window_seconds`` that open the breaker.
        window_seconds: Sliding window over which failures are counted.
        cooldown_seconds: Time open before one probe call is let through.
    """

    failure_threshold: int = Field(default=5, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)
    cooldown_seconds: float = Field(default=30.0, gt=0)


class TimeoutSettings(_Strict):
    """Time limits of one call to one provider, in seconds.

    Attributes:
        connect: Establishing the connection.
        first_token: From the request to the first streamed token (also the
            longest silence the HTTP client tolerates while reading).
        total: The whole answer.
    """

    connect: float = Field(default=5.0, gt=0)
    first_token: float = Field(default=30.0, gt=0)
    total: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.first_token > self.total or self.connect > self.total:
            raise ValueError("'connect' and 'first_token' must not exceed 'total'")
        return self


class FallbackSettings(_Strict):
    """What a call returns when every provider failed.

    Attributes:
        mode: ``"raise"`` raises :class:`~garrison.llm.errors.AllProvidersFailedError`;
            ``"message"`` answers with ``message``, marked with
            ``response_metadata["garrison_fallback"] = True``.
        message: The apology used in ``"message"`` mode.
    """

    mode: Literal["raise", "message"] = "raise"
    message: str = Field(default=DEFAULT_FALLBACK_MESSAGE, min_length=1)


class CacheSettings(_Strict):
    """In-process cache of answers to identical deterministic requests.

    Only requests whose every provider runs at temperature 0 (or is the offline
    model) are cached.

    Attributes:
        enabled: Off by default.
        max_entries: Least recently used answers are evicted beyond this.
        ttl_seconds: Age after which an answer is no longer served.
    """

    enabled: bool = False
    max_entries: int = Field(default=1024, ge=1)
    ttl_seconds: float = Field(default=600.0, gt=0)


class _ProviderBase(_Strict):
    name: str | None = Field(default=None, min_length=1)
    enabled_if_env: str | None = Field(default=None, min_length=1)


class _RemoteProvider(_ProviderBase):
    api_key_file: str | None = None
    temperature: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    params: dict[str, JsonValue] = Field(default_factory=dict)

    # `${VAR:-}` expands to "", which means "not set" for optional strings.
    @field_validator(
        "api_key_file",
        "base_url",
        "azure_endpoint",
        "organization",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class OpenAIProvider(_RemoteProvider):
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, LiteLLM...).

    ``api_key_env: null`` declares an endpoint that needs no key.
    """

    kind: Literal["openai"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    organization: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    stream_usage: bool = True


class AzureOpenAIProvider(_RemoteProvider):
    """Azure OpenAI; ``azure_endpoint`` defaults to ``AZURE_OPENAI_ENDPOINT``."""

    kind: Literal["azure_openai"]
    deployment: str = Field(min_length=1)
    model: str | None = None
    azure_endpoint: str | None = None
    api_version: str = "2024-10-21"
    api_key_env: str | None = "AZURE_OPENAI_API_KEY"


class AnthropicProvider(_RemoteProvider):
    """Anthropic's Messages API (or a compatible endpoint via ``base_url``)."""

    kind: Literal["anthropic"]
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    max_tokens: int | None = Field(default=1024, ge=1)


class OfflineProvider(_ProviderBase):
    """Garrison's deterministic offline model; ``policy`` is ``"module:attribute"``."""

    kind: Literal["offline"]
    model_name: str = "garrison-offline"
    policy: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    token_delay_seconds: float = Field(default=0.0, ge=0)


ProviderSettings = Annotated[
    OpenAIProvider | AzureOpenAIProvider | AnthropicProvider | OfflineProvider,
    Field(discriminator="kind"),
]
"""One provider of a profile, told apart by ``kind``."""


class ProfileSettings(_Strict):
    """A named chain of providers and how to call them.

    Attributes:
        providers: In priority order; the first healthy one answers.
    """

    providers: list[ProviderSettings] = Field(min_length=1)
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    timeouts: TimeoutSettings = TimeoutSettings()
    fallback: FallbackSettings = FallbackSettings()
    cache: CacheSettings = CacheSettings()


class LLMSettings(_Strict):
    """The top-level ``llm`` object of the project file."""

    profiles: dict[str, ProfileSettings] = Field(default_factory=dict)
