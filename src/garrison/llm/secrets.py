"""API keys: refused in the config file, read from the environment or a secrets file.

A config file is committed, copied into images and printed in logs; a key in it
leaks. So the loader refuses any key-like field name or key-shaped value, and the
provider builder reads keys only through ``api_key_env`` / ``api_key_file``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from garrison.llm.errors import LLMConfigError

__all__ = ["find_literal_secrets", "read_api_key"]

_SECRET_NAMES = frozenset(
    {"key", "token", "accesstoken", "authtoken", "bearertoken", "authorization", "credentials"}
)
_SECRET_SUFFIXES = ("apikey", "secret", "secretkey", "password")
_SECRET_VALUE = re.compile(
    r"\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-) keys
    r"|^\s*Bearer\s+\S{8,}",
    re.IGNORECASE,
)


def _is_secret_name(name: str) -> bool:
    normalised = re.sub(r"[^a-z0-9]", "", name.lower())
    return normalised in _SECRET_NAMES or normalised.endswith(_SECRET_SUFFIXES)


def find_literal_secrets(raw: Any, path: str = "llm") -> list[str]:
    """Find config entries that hold (or look like) a literal credential.

    Args:
        raw: The parsed JSON value to scan.
        path: Where ``raw`` sits, used in the returned locations.

    Returns:
        The locations (``llm.profiles.x.providers[0].api_key``) of key-like field
        names and key-shaped string values; never the values themselves.
    """
    found: list[str] = []
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            where = f"{path}.{key}"
            if _is_secret_name(str(key)):
                found.append(where)
            else:
                found.extend(find_literal_secrets(value, where))
    elif isinstance(raw, list):
        for index, item in enumerate(raw):
            found.extend(find_literal_secrets(item, f"{path}[{index}]"))
    elif isinstance(raw, str) and _SECRET_VALUE.search(raw):
        found.append(path)
    return found


def read_api_key(
    *,
    env_name: str | None,
    file: str | None,
    where: str,
    environ: Mapping[str, str] | None = None,
) -> SecretStr | None:
    """Read a provider's API key.

    Args:
        env_name: Environment variable holding the key (``api_key_env``).
        file: Path of a file holding the key (``api_key_file``); wins over the variable.
        where: The provider's location in the config, for error messages.
        environ: The environment (default: ``os.environ``).

    Returns:
        The key, or ``None`` when the provider declares it needs none
        (``api_key_env`` null and no file).

    Raises:
        LLMConfigError: If the file cannot be read, is empty, or the variable is unset.
    """
    environ = os.environ if environ is None else environ
    if file is not None:
        try:
            key = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            msg = f"{where}: cannot read api_key_file {file!r} ({exc.strerror or exc})"
            raise LLMConfigError(msg) from None
        if not key:
            raise LLMConfigError(f"{where}: api_key_file {file!r} is empty")
        return SecretStr(key)
    if env_name is None:
        return None
    key = environ.get(env_name, "").strip()
    if not key:
        msg = (
            f"{where}: environment variable {env_name} (api_key_env) is not set; "
            "set it, point api_key_file at a secrets file, or use api_key_env: null "
            "for endpoints that need no key"
        )
        raise LLMConfigError(msg)
    return SecretStr(key)
