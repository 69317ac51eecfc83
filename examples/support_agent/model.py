"""Chat model of the support agent: the ``support`` LLM profile of ``langgraph.json``.

By default the profile's only provider is Garrison's deterministic offline model
(driven by :func:`support_agent.policy.support_policy`), so the agent works without
network access or API keys. Set ``GARRISON_EXAMPLE_OPENAI_MODEL`` (e.g.
``gpt-4o-mini``) to put a real OpenAI-compatible model first; it reads
``OPENAI_API_KEY`` and, for other servers (vLLM, Ollama, LM Studio...),
``OPENAI_BASE_URL``. The offline model then stays as the fallback provider when
the real one is down.
"""

from garrison.llm import ResilientChatModel, resilient_chat_model

MODEL_ENV_VAR = "GARRISON_EXAMPLE_OPENAI_MODEL"
"""Environment variable that enables the real model (its value is the model name)."""

PROFILE = "support"
"""The LLM profile of ``langgraph.json`` the agent uses."""


def chat_model() -> ResilientChatModel:
    """The support agent's chat model.

    The profile is resolved at the first call, after the server has read the
    project file, so this is safe to call at import time.

    Returns:
        A resilient model over the ``support`` profile.
    """
    return resilient_chat_model(PROFILE)
