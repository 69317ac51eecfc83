"""Chat models bundled with Garrison.

:class:`ResilientChatModel` (usually built with :func:`resilient_chat_model` from a
named profile of the project file) retries, trips per-provider circuit breakers,
fails over between providers and falls back when all are down.
:class:`OfflineChatModel` is a deterministic, network-free LangChain chat model
whose replies come from a pluggable :data:`ChatPolicy`.
"""

from garrison.llm.breaker import CircuitBreakers
from garrison.llm.chain import ModelChain
from garrison.llm.errors import (
    AllProvidersFailedError,
    LLMConfigError,
    LLMError,
    ProviderFailure,
    StreamInterruptedError,
)
from garrison.llm.offline import (
    ChatPolicy,
    OfflineChatModel,
    PlannedToolCall,
    PolicyReply,
    ToolChoice,
    ToolSpec,
    default_policy,
    extract_tool_args,
    last_human_text,
    match_tool,
    trailing_tool_results,
)
from garrison.llm.profiles import (
    BreakerSettings,
    CacheSettings,
    FallbackSettings,
    ProfileSettings,
    RetrySettings,
    TimeoutSettings,
)
from garrison.llm.providers import Provider
from garrison.llm.registry import ProfileRegistry, configure_profiles
from garrison.llm.resilient import ResilientChatModel, resilient_chat_model

__all__ = [
    "AllProvidersFailedError",
    "BreakerSettings",
    "CacheSettings",
    "ChatPolicy",
    "CircuitBreakers",
    "FallbackSettings",
    "LLMConfigError",
    "LLMError",
    "ModelChain",
    "OfflineChatModel",
    "PlannedToolCall",
    "PolicyReply",
    "ProfileRegistry",
    "ProfileSettings",
    "Provider",
    "ProviderFailure",
    "ResilientChatModel",
    "RetrySettings",
    "StreamInterruptedError",
    "TimeoutSettings",
    "ToolChoice",
    "ToolSpec",
    "configure_profiles",
    "default_policy",
    "extract_tool_args",
    "last_human_text",
    "match_tool",
    "resilient_chat_model",
    "trailing_tool_results",
]
