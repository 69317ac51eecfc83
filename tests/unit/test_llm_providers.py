"""Building providers from profile entries, naming them, adapting tool_choice."""

import logging
from pathlib import Path
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import AzureChatOpenAI, ChatOpenAI
from pydantic import TypeAdapter

from garrison.llm import LLMConfigError, OfflineChatModel, PolicyReply, Provider
from garrison.llm.profiles import ProviderSettings, TimeoutSettings
from garrison.llm.providers import adapt_tool_choice, build_provider

TIMEOUTS = TimeoutSettings(connect=1.5, first_token=7.0, total=60.0)
_PROVIDER = TypeAdapter(ProviderSettings)


def _build(raw: dict[str, Any]) -> Provider:
    return build_provider(_PROVIDER.validate_python(raw), TIMEOUTS, "llm.profiles.p.providers[0]")


def scripted(messages: Any, tools: Any) -> PolicyReply:
    return PolicyReply(content="scripted")


def test_openai_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    provider = _build(
        {
            "kind": "openai",
            "model": "gpt-4o-mini",
            "base_url": "http://127.0.0.1:9/v1",
            "temperature": 0,
            "max_tokens": 50,
            "params": {"top_p": 0.5},
        }
    )
    model = provider.chat_model

    assert isinstance(model, ChatOpenAI)
    assert (provider.name, provider.model_name) == ("openai:127.0.0.1:9", "gpt-4o-mini")
    assert model.max_retries == 0  # Garrison retries, not the SDK
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-from-env"
    assert (model.temperature, model.max_tokens, model.top_p) == (0, 50, 0.5)
    assert model.stream_usage is True
    timeout = model.async_client._client.timeout
    assert (timeout.connect, timeout.read) == (1.5, 7.0)


def test_openai_compatible_endpoints_may_need_no_key() -> None:
    provider = _build(
        {
            "kind": "openai",
            "model": "llama3",
            "base_url": "http://127.0.0.1:11434/v1",
            "api_key_env": None,
            "name": "ollama",
        }
    )

    assert provider.name == "ollama"
    assert isinstance(provider.chat_model, ChatOpenAI)
    assert provider.chat_model.openai_api_key is not None


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(
        LLMConfigError, match=r"providers\[0\]: environment variable OPENAI_API_KEY"
    ):
        _build({"kind": "openai", "model": "gpt-4o-mini"})


def test_azure_provider_reads_its_key_from_a_file(tmp_path: Path) -> None:
    key = tmp_path / "azure-key"
    key.write_text("azure-secret\n")
    provider = _build(
        {
            "kind": "azure_openai",
            "deployment": "prod-4o",
            "api_key_file": str(key),
            "azure_endpoint": "https://example.openai.azure.com",
        }
    )

    assert isinstance(provider.chat_model, AzureChatOpenAI)
    assert (provider.name, provider.model_name) == (
        "azure_openai:example.openai.azure.com",
        "prod-4o",
    )
    assert provider.chat_model.openai_api_key is not None
    assert provider.chat_model.openai_api_key.get_secret_value() == "azure-secret"
    assert provider.chat_model.max_retries == 0


def test_anthropic_provider_has_a_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    provider = _build({"kind": "anthropic", "model": "claude-3-5-haiku-latest"})
    model = provider.chat_model

    assert isinstance(model, ChatAnthropic)
    assert (provider.name, provider.model_name) == ("anthropic", "claude-3-5-haiku-latest")
    assert model.max_retries == 0
    assert model.max_tokens == 1024
    assert model.anthropic_api_key.get_secret_value() == "sk-ant-from-env"
    timeout = model._async_client.timeout
    assert (timeout.connect, timeout.read) == (1.5, 7.0)


def test_offline_provider_loads_its_policy() -> None:
    provider = _build(
        {"kind": "offline", "policy": f"{__name__}:scripted", "model_name": "scripted-offline"}
    )

    assert isinstance(provider.chat_model, OfflineChatModel)
    assert (provider.name, provider.model_name) == ("offline", "scripted-offline")
    assert provider.chat_model.invoke("hi").content == "scripted"


def test_an_unloadable_policy_is_a_clear_error() -> None:
    with pytest.raises(LLMConfigError, match=r"cannot load policy 'nowhere\.module:policy'"):
        _build({"kind": "offline", "policy": "nowhere.module:policy"})


def test_any_langchain_model_becomes_a_provider(caplog: pytest.LogCaptureFixture) -> None:
    openai = ChatOpenAI(model="gpt-x", api_key="k", base_url="http://10.0.0.1:8000/v1")
    offline = OfflineChatModel()

    with caplog.at_level(logging.WARNING, logger="garrison.llm"):
        wrapped = Provider.of(openai)

    assert (wrapped.name, wrapped.model_name) == ("openai:10.0.0.1:8000", "gpt-x")
    assert "max_retries=None; set it to 0" in caplog.text
    assert (Provider.of(offline).name, Provider.of(offline).model_name) == (
        "offline",
        "garrison-offline",
    )
    assert Provider.of(offline, name="local").name == "local"


ANTHROPIC = ChatAnthropic(model="claude-x", api_key="k")
OPENAI = ChatOpenAI(model="gpt-x", api_key="k")


@pytest.mark.parametrize(
    ("model", "choice", "expected"),
    [
        (OPENAI, None, None),
        (OPENAI, "auto", None),
        (OPENAI, False, None),
        (OPENAI, "required", "any"),
        (ANTHROPIC, True, "any"),
        (OPENAI, "any", "any"),
        (OPENAI, "lookup", "lookup"),
        (ANTHROPIC, {"type": "function", "function": {"name": "lookup"}}, "lookup"),
        (OPENAI, "none", "none"),
        (ANTHROPIC, "none", {"type": "none"}),
    ],
)
def test_adapt_tool_choice(model: Any, choice: Any, expected: Any) -> None:
    assert adapt_tool_choice(model, choice) == expected
