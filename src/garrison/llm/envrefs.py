"""Environment references inside profiles: ``${NAME}``, ``${NAME:-default}``, ``enabled_if_env``.

They let one committed profile adapt to its deployment (a model name, an endpoint,
an optional provider) without templating the config file. Pure functions over the
raw JSON and an environment mapping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from garrison.llm.errors import LLMConfigError

__all__ = ["enabled_providers", "expand_env"]

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(raw: Any, environ: Mapping[str, str], path: str) -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string of ``raw``.

    Args:
        raw: A parsed JSON value.
        environ: The environment to read.
        path: Where ``raw`` sits, for error messages.

    Returns:
        A copy of ``raw`` with references replaced.

    Raises:
        LLMConfigError: If a variable without a default is not set.
    """
    if isinstance(raw, Mapping):
        return {key: expand_env(value, environ, f"{path}.{key}") for key, value in raw.items()}
    if isinstance(raw, list):
        return [expand_env(item, environ, f"{path}[{i}]") for i, item in enumerate(raw)]
    if not isinstance(raw, str):
        return raw

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        msg = f"{path}: environment variable {name} is not set (write ${{{name}:-}} to allow that)"
        raise LLMConfigError(msg)

    return _REFERENCE.sub(substitute, raw)


def enabled_providers(providers: list[Any], environ: Mapping[str, str]) -> list[Any]:
    """Keep the providers whose ``enabled_if_env`` variable is set and not empty.

    Args:
        providers: Raw provider objects of one profile.
        environ: The environment to read.

    Returns:
        The providers to use, in their original order.
    """
    return [
        provider
        for provider in providers
        if not isinstance(provider, Mapping)
        or not isinstance(gate := provider.get("enabled_if_env"), str)
        or environ.get(gate, "").strip()
    ]
