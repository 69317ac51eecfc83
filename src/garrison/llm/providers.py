"""Providers: LangChain chat models with the names Garrison reports them under.

:func:`build_provider` turns a profile entry into a configured chat model
(``ChatOpenAI``, ``AzureChatOpenAI``, ``ChatAnthropic`` or the offline model) with
the SDK's own retries off, since the resilient model retries itself, and with the
profile's connect and first-token timeouts on its HTTP client.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel

from garrison.llm.errors import LLMConfigError
from garrison.llm.offline import ChatPolicy, OfflineChatModel
from garrison.llm.profiles import (
    AzureOpenAIProvider,
    OfflineProvider,
    OpenAIProvider,
    ProviderSettings,
    TimeoutSettings,
)
from garrison.llm.secrets import read_api_key

__all__ = ["Provider", "adapt_tool_choice", "build_provider"]

logger = logging.getLogger("garrison.llm")

_KINDS_BY_LLM_TYPE = {
    "openai-chat": "openai",
    "azure-openai-chat": "azure_openai",
    "anthropic-chat": "anthropic",
    "garrison-offline": "offline",
}
# Local servers (Ollama, vLLM...) ignore the key, but the OpenAI SDK insists on one.
_NO_KEY_PLACEHOLDER = "not-needed"


@dataclass(frozen=True, slots=True)
class Provider:
    """One chat model of a failover chain.

    Attributes:
        name: Provider name: the ``provider`` label of metrics and half of the
            circuit breaker's key.
        model_name: The ``model`` label and the other half of the breaker's key.
        chat_model: The LangChain chat model to call.
    """

    name: str
    model_name: str
    chat_model: BaseChatModel

    @classmethod
    def of(cls, chat_model: BaseChatModel, name: str | None = None) -> Provider:
        """Wrap any LangChain chat model, deriving its name from its type and endpoint.

        Set the model's own ``max_retries`` to 0 (where it has one), or its SDK
        retries multiply with Garrison's.

        Args:
            chat_model: The model.
            name: Overrides the derived provider name.

        Returns:
            The provider.
        """
        # None usually means "the SDK default", which retries too.
        if getattr(chat_model, "max_retries", 0) != 0:
            logger.warning(
                "%s has max_retries=%r; set it to 0 so only Garrison retries",
                type(chat_model).__name__,
                getattr(chat_model, "max_retries", None),
            )
        kind = _KINDS_BY_LLM_TYPE.get(chat_model._llm_type, chat_model._llm_type)
        base_url = next(
            (
                value
                for attribute in ("openai_api_base", "anthropic_api_url", "azure_endpoint")
                if isinstance(value := getattr(chat_model, attribute, None), str)
            ),
            None,
        )
        model_name = next(
            (
                value
                for attribute in ("model_name", "model", "deployment_name")
                if isinstance(value := getattr(chat_model, attribute, None), str)
            ),
            "",
        )
        return cls(name or _default_name(kind, base_url), model_name, chat_model)


def _default_name(kind: str, base_url: str | None) -> str:
    if not base_url:
        return kind
    return f"{kind}:{urlsplit(base_url).netloc or base_url}"


def _openai_timeout(timeouts: TimeoutSettings) -> Any:
    # The SDK's own Timeout class: openai>=3 runs on httpx2 and refuses httpx objects.
    # The read timeout bounds every silence: waiting for the first token, or a stalled stream.
    import openai

    return openai.Timeout(timeouts.first_token, connect=timeouts.connect)


def _load_policy(reference: str, where: str) -> ChatPolicy:
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise LLMConfigError(f"{where}: cannot load policy {reference!r} ({exc})") from None
    if not callable(target):
        raise LLMConfigError(f"{where}: policy {reference!r} is not callable")
    policy: ChatPolicy = target
    return policy


def _optional(**values: Any) -> dict[str, Any]:
    """Leave unset options to the model class, which knows their defaults."""
    return {key: value for key, value in values.items() if value is not None}


def build_provider(
    settings: ProviderSettings,
    timeouts: TimeoutSettings,
    where: str,
    environ: Mapping[str, str] | None = None,
) -> Provider:
    """Build the chat model a profile entry describes.

    Args:
        settings: The provider entry, with environment references already expanded.
        timeouts: The profile's timeouts.
        where: The entry's location in the config, for error messages.
        environ: Where ``api_key_env`` is looked up (default: ``os.environ``).

    Returns:
        The provider.

    Raises:
        LLMConfigError: If its API key or offline policy cannot be loaded.
    """
    if isinstance(settings, OfflineProvider):
        model = OfflineChatModel(
            model_name=settings.model_name,
            token_delay_seconds=settings.token_delay_seconds,
            **_optional(policy=settings.policy and _load_policy(settings.policy, where)),
        )
        return Provider(settings.name or "offline", settings.model_name, model)

    key = read_api_key(
        env_name=settings.api_key_env, file=settings.api_key_file, where=where, environ=environ
    )
    common: dict[str, Any] = {
        **_optional(temperature=settings.temperature, max_tokens=settings.max_tokens),
        "max_retries": 0,
        **settings.params,
    }
    # Imported here: each SDK costs about a second, and most profiles use one or none.
    if isinstance(settings, OpenAIProvider):
        from langchain_openai import ChatOpenAI

        openai_model = ChatOpenAI(
            model=settings.model,
            api_key=key or _NO_KEY_PLACEHOLDER,
            timeout=_openai_timeout(timeouts),
            stream_usage=settings.stream_usage,
            **_optional(base_url=settings.base_url, organization=settings.organization),
            **common,
        )
        name = settings.name or _default_name("openai", settings.base_url)
        return Provider(name, settings.model, openai_model)
    if isinstance(settings, AzureOpenAIProvider):
        from langchain_openai import AzureChatOpenAI

        azure_model = AzureChatOpenAI(
            azure_deployment=settings.deployment,
            api_version=settings.api_version,
            api_key=key or _NO_KEY_PLACEHOLDER,
            timeout=_openai_timeout(timeouts),
            stream_usage=True,
            **_optional(azure_endpoint=settings.azure_endpoint, model=settings.model),
            **common,
        )
        name = settings.name or _default_name("azure_openai", settings.azure_endpoint)
        return Provider(name, settings.model or settings.deployment, azure_model)
    from garrison.llm._anthropic import TimedChatAnthropic

    anthropic_model = TimedChatAnthropic(
        model=settings.model,
        api_key=key or _NO_KEY_PLACEHOLDER,
        timeout=timeouts.first_token,
        connect_timeout=timeouts.connect,
        **_optional(base_url=settings.base_url),
        **common,
    )
    name = settings.name or _default_name("anthropic", settings.base_url)
    return Provider(name, settings.model, anthropic_model)


def adapt_tool_choice(model: BaseChatModel, choice: Any) -> Any:
    """Translate a ``tool_choice`` into the dialect every provider accepts.

    ``"required"``/``True`` become ``"any"`` and OpenAI's
    ``{"type": "function", "function": {"name": ...}}`` becomes the bare tool
    name: ``ChatOpenAI``, ``ChatAnthropic`` and the offline model all take those.

    Args:
        model: The model the tools will be bound to.
        choice: The caller's ``tool_choice``.

    Returns:
        The equivalent choice for ``model.bind_tools``.
    """
    if choice is True or choice == "required":
        return "any"
    if choice is False or choice == "auto":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return choice["function"].get("name", choice)
    if choice == "none" and model._llm_type == "anthropic-chat":
        return {"type": "none"}
    return choice
