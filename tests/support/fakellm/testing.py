"""Helpers for tests of resilient models: profiles pointing at the fakes, a fake clock,
metric samples."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import REGISTRY

from garrison.llm import CircuitBreakers, ProfileRegistry, ResilientChatModel
from tests.support.fakellm.anthropic import FakeAnthropic
from tests.support.fakellm.http import FakeHTTPServer
from tests.support.fakellm.openai import FakeOpenAI

KEY_ENV = "FAKE_LLM_KEY"
FAST_RETRY = {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}

ServerT = TypeVar("ServerT", bound=FakeHTTPServer)


@contextmanager
def running(server: ServerT) -> Iterator[ServerT]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def openai_entry(server: FakeOpenAI, name: str = "primary", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "openai",
        "name": name,
        "model": "gpt-fake",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        **extra,
    }


def anthropic_entry(server: FakeAnthropic, name: str = "backup", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "anthropic",
        "name": name,
        "model": "claude-fake",
        "base_url": server.url,
        "api_key_env": KEY_ENV,
        **extra,
    }


def profile_model(
    providers: list[dict[str, Any]],
    *,
    breakers: CircuitBreakers | None = None,
    name: str = "test",
    **sections: Any,
) -> ResilientChatModel:
    """A model over a one-profile registry of its own (fresh breakers unless given)."""
    registry = ProfileRegistry(environ={KEY_ENV: "sk-fake-key-from-env"})
    profile = {"providers": providers, "retry": FAST_RETRY, **sections}
    registry.configure({"profiles": {name: profile}})
    return ResilientChatModel(
        profile_name=name, registry=registry, breakers=breakers or CircuitBreakers()
    )


def sample(metric: str, **labels: str) -> float:
    """A sample of the default Prometheus registry (0 when never recorded)."""
    return REGISTRY.get_sample_value(metric, labels) or 0.0
