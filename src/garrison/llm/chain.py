"""A resolved failover chain: providers in priority order and the policies for calling them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from garrison.llm.cache import ResponseCache
from garrison.llm.errors import LLMConfigError
from garrison.llm.profiles import (
    BreakerSettings,
    CacheSettings,
    FallbackSettings,
    ProfileSettings,
    RetrySettings,
    TimeoutSettings,
)
from garrison.llm.providers import Provider, build_provider

__all__ = ["ModelChain", "build_chain", "new_cache"]


@dataclass(frozen=True, slots=True)
class ModelChain:
    """What a resilient model calls, and how.

    Attributes:
        profile: Profile name (``"custom"`` for explicit model lists); a metrics label.
        providers: In priority order.
        retry: Retries per provider.
        breaker: Circuit breaker settings, applied to each provider.
        timeouts: Per-call time limits.
        fallback: What to do when every provider failed.
        cache: The response cache, or ``None`` when caching is off.
    """

    profile: str
    providers: tuple[Provider, ...]
    retry: RetrySettings = field(default_factory=RetrySettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    cache: ResponseCache | None = None


def new_cache(settings: CacheSettings) -> ResponseCache | None:
    """A cache for ``settings``, or ``None`` when caching is disabled."""
    if not settings.enabled:
        return None
    return ResponseCache(max_entries=settings.max_entries, ttl_seconds=settings.ttl_seconds)


def build_chain(
    name: str, settings: ProfileSettings, environ: Mapping[str, str] | None = None
) -> ModelChain:
    """Build every provider of a profile.

    Args:
        name: The profile name.
        settings: The profile, with environment references already expanded.
        environ: Where API keys are looked up (default: ``os.environ``).

    Returns:
        The chain.

    Raises:
        LLMConfigError: If a provider's API key or policy cannot be loaded.
    """
    providers = tuple(
        build_provider(
            provider, settings.timeouts, f"llm.profiles.{name}.providers[{index}]", environ
        )
        for index, provider in enumerate(settings.providers)
    )
    seen: set[tuple[str, str]] = set()
    for provider in providers:
        key = (provider.name, provider.model_name)
        if key in seen:
            # They would share one breaker and one set of metrics labels.
            msg = (
                f"llm.profiles.{name}: two providers are {provider.name}/{provider.model_name}; "
                "give one of them a distinct 'name'"
            )
            raise LLMConfigError(msg)
        seen.add(key)
    return ModelChain(
        profile=name,
        providers=providers,
        retry=settings.retry,
        breaker=settings.breaker,
        timeouts=settings.timeouts,
        fallback=settings.fallback,
        cache=new_cache(settings.cache),
    )
