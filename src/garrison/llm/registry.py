"""The process-wide registry of LLM profiles.

The server calls :func:`configure_profiles` with the project file's ``llm`` object
before it imports graphs. Graph modules usually create their model at import time
(``resilient_chat_model("support")``), so profiles are resolved lazily, at the
model's first call: environment references are expanded and providers built then,
once per configuration. When nothing configured the registry (plain Python tests,
notebooks), it reads the ``llm`` object of the file named by ``GARRISON_CONFIG``,
else of ``./garrison.json`` or ``./langgraph.json``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from garrison.llm.chain import ModelChain, build_chain
from garrison.llm.envrefs import enabled_providers, expand_env
from garrison.llm.errors import LLMConfigError
from garrison.llm.profiles import LLMSettings, ProfileSettings
from garrison.llm.secrets import find_literal_secrets

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_REGISTRY",
    "ProfileRegistry",
    "configure_profiles",
    "parse_llm_config",
]

CONFIG_ENV_VAR = "GARRISON_CONFIG"
_PROJECT_FILE_NAMES = ("garrison.json", "langgraph.json")


def _problems(exc: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{'.'.join([prefix, *(str(part) for part in error['loc'])])}: {error['msg']}"
        for error in exc.errors()
    )


def parse_llm_config(raw: Any, source: str = "project file") -> dict[str, dict[str, Any]]:
    """Validate an ``llm`` object and return its raw profiles by name.

    Profiles stay raw because environment references are expanded only when a
    profile is used; validating now still reports structural errors at start-up.

    Args:
        raw: The ``llm`` object (``None`` for none).
        source: Where it came from, for error messages.

    Returns:
        Raw profile objects by name.

    Raises:
        LLMConfigError: If it holds a literal secret or does not match the schema.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise LLMConfigError(f"{source}: 'llm' must be an object")
    secrets = find_literal_secrets(raw)
    if secrets:
        msg = (
            f"{source}: API keys must not be written in the config file (found at "
            f"{', '.join(secrets)}); name an environment variable with 'api_key_env' "
            "or a secrets file with 'api_key_file'"
        )
        raise LLMConfigError(msg)
    try:
        LLMSettings.model_validate(raw)
    except ValidationError as exc:
        raise LLMConfigError(f"{source}: {_problems(exc, 'llm')}") from None
    profiles = raw.get("profiles") or {}
    return {str(name): dict(profile) for name, profile in profiles.items()}


def _discover(environ: Mapping[str, str], cwd: Path) -> tuple[dict[str, dict[str, Any]], str]:
    named = environ.get(CONFIG_ENV_VAR)
    candidates = [Path(named)] if named else [cwd / name for name in _PROJECT_FILE_NAMES]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LLMConfigError(f"{path}: cannot read LLM profiles ({exc})") from None
        llm = data.get("llm") if isinstance(data, dict) else None
        return parse_llm_config(llm, str(path)), str(path)
    looked = ", ".join(str(path) for path in candidates)
    return {}, f"no project file found (looked at {looked})"


class ProfileRegistry:
    """Named profiles and the chains built from them.

    Args:
        environ: Environment for references and discovery (default: ``os.environ``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._lock = threading.Lock()
        self._profiles: dict[str, dict[str, Any]] | None = None
        self._source = "server configuration"
        self._chains: dict[str, ModelChain] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """Increases at every :meth:`configure`, so models know to resolve again."""
        return self._generation

    def configure(self, raw: Any, source: str = "project file") -> None:
        """Replace every profile with those of an ``llm`` object (``None`` for none).

        Raises:
            LLMConfigError: If the object is invalid; the registry is then unchanged.
        """
        profiles = parse_llm_config(raw, source)
        with self._lock:
            self._profiles = profiles
            self._source = source
            self._chains = {}
            self._generation += 1

    def reset(self) -> None:
        """Forget the configuration; the next lookup discovers the project file again."""
        with self._lock:
            self._profiles = None
            self._source = "server configuration"
            self._chains = {}
            self._generation += 1

    def names(self) -> list[str]:
        """Names of the configured profiles."""
        with self._lock:
            return sorted(self._loaded())

    def settings(self, name: str) -> ProfileSettings:
        """One profile with its environment references expanded.

        Raises:
            LLMConfigError: If the profile is unknown, enables no provider, or
                references an unset variable.
        """
        with self._lock:
            profiles = self._loaded()
            source = self._source
        if name not in profiles:
            known = ", ".join(repr(n) for n in sorted(profiles))
            detail = f"known profiles: {known}" if known else f"no profiles configured ({source})"
            raise LLMConfigError(f"unknown LLM profile {name!r}; {detail}")
        environ = os.environ if self._environ is None else self._environ
        raw = dict(profiles[name])
        where = f"llm.profiles.{name}"
        raw["providers"] = enabled_providers(list(raw.get("providers", [])), environ)
        if not raw["providers"]:
            raise LLMConfigError(f"{source}: {where}: no provider is enabled (see enabled_if_env)")
        expanded = expand_env(raw, environ, where)
        try:
            return ProfileSettings.model_validate(expanded)
        except ValidationError as exc:
            raise LLMConfigError(f"{source}: {_problems(exc, where)}") from None

    def chain(self, name: str) -> ModelChain:
        """The chain of a profile, built at its first use and shared afterwards.

        Raises:
            LLMConfigError: As :meth:`settings`, or if a provider cannot be built.
        """
        generation = self._generation
        with self._lock:
            if (built := self._chains.get(name)) is not None:
                return built
        chain = build_chain(name, self.settings(name), self._environ)
        with self._lock:
            if generation == self._generation:
                chain = self._chains.setdefault(name, chain)
        return chain

    def _loaded(self) -> dict[str, dict[str, Any]]:
        if self._profiles is None:
            environ = os.environ if self._environ is None else self._environ
            self._profiles, self._source = _discover(environ, Path.cwd())
        return self._profiles


DEFAULT_REGISTRY: ProfileRegistry = ProfileRegistry()
"""The registry the server configures and ``resilient_chat_model`` reads."""


def configure_profiles(raw: Mapping[str, Any] | None) -> None:
    """Install the project's LLM profiles for this process.

    The server calls it with the project file's ``llm`` object before it imports
    graphs; calling it again replaces the profiles (models resolve again at their
    next call).

    Args:
        raw: The ``llm`` object, or ``None`` when the project has none.

    Raises:
        LLMConfigError: If the object holds a literal API key or is invalid.
    """
    DEFAULT_REGISTRY.configure(raw)
