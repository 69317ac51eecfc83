"""Profiles: schema, refused secrets, environment references, registry and discovery."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from garrison.config.project import parse_project
from garrison.llm import (
    LLMConfigError,
    OfflineChatModel,
    ProfileRegistry,
    ProfileSettings,
    ResilientChatModel,
)
from garrison.llm.envrefs import enabled_providers, expand_env
from garrison.llm.registry import parse_llm_config
from garrison.llm.secrets import find_literal_secrets, read_api_key

OFFLINE = {"kind": "offline"}


def _llm(**profile: Any) -> dict[str, Any]:
    return {"profiles": {"p": {"providers": [OFFLINE], **profile}}}


def test_defaults_are_sane() -> None:
    profile = ProfileSettings.model_validate({"providers": [OFFLINE]})

    assert profile.retry.max_attempts == 3
    assert profile.breaker.failure_threshold == 5
    assert (profile.timeouts.connect, profile.timeouts.first_token, profile.timeouts.total) == (
        5.0,
        30.0,
        120.0,
    )
    assert profile.fallback.mode == "raise"
    assert profile.cache.enabled is False


@pytest.mark.parametrize(
    ("llm", "message"),
    [
        ("not an object", "'llm' must be an object"),
        ({"profiles": {"p": {"providers": []}}}, "llm.profiles.p.providers: List should have"),
        (_llm(retry={"max_attempts": "3"}), "llm.profiles.p.retry.max_attempts"),
        (_llm(retry={"max_attempts": 0}), "greater than or equal to 1"),
        (_llm(retyr={}), "llm.profiles.p.retyr: Extra inputs are not permitted"),
        (_llm(timeouts={"first_token": 60, "total": 10}), "must not exceed 'total'"),
        (_llm(fallback={"mode": "shrug"}), "llm.profiles.p.fallback.mode"),
        ({"profiles": {"p": {"providers": [{"kind": "gemini"}]}}}, "does not match any of the"),
        ({"profiles": {"p": {"providers": [{"kind": "openai"}]}}}, "openai.model: Field required"),
        ({"profiles": {"p": {"providers": [{"kind": "offline", "policy": "x"}]}}}, "policy"),
    ],
)
def test_invalid_profiles_are_refused_with_their_location(llm: Any, message: str) -> None:
    with pytest.raises(LLMConfigError, match=r"^garrison\.json: ") as caught:
        parse_llm_config(llm, source="garrison.json")
    assert message in str(caught.value)


SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"


@pytest.mark.parametrize(
    ("provider", "where"),
    [
        ({"kind": "openai", "model": "m", "api_key": SECRET}, "api_key"),
        ({"kind": "openai", "model": "m", "apiKey": "x"}, "apiKey"),
        (
            {"kind": "openai", "model": "m", "params": {"openai_api_key": "x"}},
            "params.openai_api_key",
        ),
        ({"kind": "anthropic", "model": "m", "anthropic-api-key": "x"}, "anthropic-api-key"),
        (
            {"kind": "openai", "model": "m", "params": {"default_headers": {"Authorization": "x"}}},
            "params.default_headers.Authorization",
        ),
        ({"kind": "openai", "model": "m", "params": {"password": "x"}}, "params.password"),
        ({"kind": "openai", "model": "m", "params": {"token": "x"}}, "params.token"),
        ({"kind": "openai", "model": "m", "params": {"key": "x"}}, "params.key"),
        ({"kind": "openai", "model": SECRET}, "model"),
        ({"kind": "openai", "model": "m", "base_url": f"https://x/?key={SECRET}"}, "base_url"),
        ({"kind": "openai", "model": "m", "params": {"h": "Bearer abcdefgh123"}}, "params.h"),
    ],
)
def test_literal_keys_in_the_config_are_refused(provider: dict[str, Any], where: str) -> None:
    llm = {"profiles": {"p": {"providers": [provider]}}}

    with pytest.raises(LLMConfigError, match="API keys must not be written") as caught:
        parse_llm_config(llm)

    assert f"llm.profiles.p.providers[0].{where}" in str(caught.value)
    assert "api_key_env" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_key_references_are_not_secrets() -> None:
    provider = {
        "kind": "openai",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
        "api_key_file": "/run/secrets/openai",
        "max_tokens": 100,
        "params": {"top_p": 0.5, "stream_usage": True},
    }
    assert find_literal_secrets({"profiles": {"p": {"providers": [provider]}}}) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${MODEL}", "gpt-4o"),
        ("prefix-${MODEL}-suffix", "prefix-gpt-4o-suffix"),
        ("${UNSET:-fallback}", "fallback"),
        ("${UNSET:-}", ""),
        ("${EMPTY:-default}", ""),
        ("no references", "no references"),
        ({"a": ["${MODEL}", 3, None, True]}, {"a": ["gpt-4o", 3, None, True]}),
    ],
)
def test_environment_references_expand(raw: Any, expected: Any) -> None:
    assert expand_env(raw, {"MODEL": "gpt-4o", "EMPTY": ""}, "llm") == expected


def test_an_unset_reference_without_default_is_an_error() -> None:
    with pytest.raises(LLMConfigError, match=r"llm.profiles.p.model: .*MISSING is not set"):
        expand_env("${MISSING}", {}, "llm.profiles.p.model")


def test_enabled_if_env_gates_providers() -> None:
    gated = {"kind": "openai", "model": "m", "enabled_if_env": "USE_OPENAI"}
    providers = [gated, OFFLINE]

    assert enabled_providers(providers, {}) == [OFFLINE]
    assert enabled_providers(providers, {"USE_OPENAI": "  "}) == [OFFLINE]
    assert enabled_providers(providers, {"USE_OPENAI": "1"}) == providers


def test_read_api_key_from_env_and_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("  from-file\n")
    environ = {"MY_KEY": "from-env"}

    from_env = read_api_key(env_name="MY_KEY", file=None, where="w", environ=environ)
    from_file = read_api_key(env_name="MY_KEY", file=str(key_file), where="w", environ=environ)

    assert isinstance(from_env, SecretStr) and from_env.get_secret_value() == "from-env"
    assert from_file is not None and from_file.get_secret_value() == "from-file"
    assert "from-env" not in repr(from_env)
    assert read_api_key(env_name=None, file=None, where="w", environ=environ) is None


@pytest.mark.parametrize(
    ("env_name", "file", "message"),
    [
        ("NOT_SET", None, "NOT_SET \\(api_key_env\\) is not set"),
        (None, "/nonexistent/key", "cannot read api_key_file"),
        (None, "EMPTY", "is empty"),
    ],
)
def test_unreadable_keys_are_clear_errors(
    tmp_path: Path, env_name: str | None, file: str | None, message: str
) -> None:
    if file == "EMPTY":
        file = str(tmp_path / "empty")
        Path(file).write_text("\n")
    with pytest.raises(LLMConfigError, match=message):
        read_api_key(env_name=env_name, file=file, where="llm.profiles.p", environ={})


def test_registry_resolves_a_profile_with_the_environment() -> None:
    registry = ProfileRegistry(environ={"FAST_MODEL": "gpt-4o-mini", "ON": "yes", "K": "key"})
    registry.configure(
        {
            "profiles": {
                "p": {
                    "providers": [
                        {
                            "kind": "openai",
                            "model": "${FAST_MODEL}",
                            "enabled_if_env": "ON",
                            "api_key_env": "K",
                            "base_url": "${BASE_URL:-}",
                        },
                        {"kind": "openai", "model": "x", "enabled_if_env": "OFF"},
                        OFFLINE,
                    ]
                }
            }
        }
    )

    settings = registry.settings("p")

    assert [p.kind for p in settings.providers] == ["openai", "offline"]
    first = settings.providers[0]
    assert first.kind == "openai" and first.model == "gpt-4o-mini" and first.base_url is None


def test_unknown_profiles_name_the_known_ones() -> None:
    registry = ProfileRegistry(environ={})
    registry.configure(
        {"profiles": {"support": {"providers": [OFFLINE]}, "fast": _llm()["profiles"]["p"]}}
    )

    with pytest.raises(
        LLMConfigError, match="unknown LLM profile 'suport'; known profiles: 'fast', 'support'"
    ):
        registry.settings("suport")


def test_no_profiles_configured_says_so() -> None:
    registry = ProfileRegistry(environ={})
    registry.configure(None)

    with pytest.raises(LLMConfigError, match="unknown LLM profile 'p'; no profiles configured"):
        registry.chain("p")


def test_an_invalid_configuration_leaves_the_registry_unchanged() -> None:
    registry = ProfileRegistry(environ={})
    registry.configure(_llm())
    generation = registry.generation

    with pytest.raises(LLMConfigError):
        registry.configure({"profiles": {"p": {"providers": [{"kind": "?"}]}}})

    assert registry.names() == ["p"] and registry.generation == generation


async def test_models_created_before_configuration_resolve_at_first_call() -> None:
    registry = ProfileRegistry(environ={})
    model = ResilientChatModel(profile_name="late", registry=registry)  # module import time
    registry.configure(
        {"profiles": {"late": {"providers": [{"kind": "offline", "model_name": "first"}]}}}
    )

    first = await model.ainvoke("hi")
    registry.configure(
        {"profiles": {"late": {"providers": [{"kind": "offline", "model_name": "second"}]}}}
    )
    second = await model.ainvoke("hi")

    assert first.response_metadata["garrison_model"] == "first"
    assert second.response_metadata["garrison_model"] == "second"


def test_chains_are_built_once_per_configuration() -> None:
    registry = ProfileRegistry(environ={})
    registry.configure(_llm())

    chain = registry.chain("p")

    assert registry.chain("p") is chain
    assert isinstance(chain.providers[0].chat_model, OfflineChatModel)
    registry.configure(_llm())
    assert registry.chain("p") is not chain


def _write_project(path: Path, llm: Any) -> None:
    path.write_text(json.dumps({"graphs": {"g": "./g.py:graph"}, "llm": llm}))


@pytest.mark.parametrize("file_name", ["garrison.json", "langgraph.json"])
def test_unconfigured_registry_reads_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str
) -> None:
    _write_project(tmp_path / file_name, _llm())
    monkeypatch.chdir(tmp_path)

    assert ProfileRegistry(environ={}).names() == ["p"]


def test_unconfigured_registry_reads_garrison_config(tmp_path: Path) -> None:
    project = tmp_path / "elsewhere.json"
    _write_project(project, {"profiles": {"from-env-file": {"providers": [OFFLINE]}}})

    assert ProfileRegistry(environ={"GARRISON_CONFIG": str(project)}).names() == ["from-env-file"]


def test_discovered_files_are_checked_for_secrets_too(tmp_path: Path) -> None:
    project = tmp_path / "garrison.json"
    _write_project(
        project,
        {"profiles": {"p": {"providers": [{"kind": "openai", "model": "m", "api_key": "x"}]}}},
    )

    with pytest.raises(LLMConfigError, match=f"{project}: API keys must not be written"):
        ProfileRegistry(environ={"GARRISON_CONFIG": str(project)}).names()


def test_unconfigured_registry_without_a_project_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(LLMConfigError, match="no project file found"):
        ProfileRegistry(environ={}).settings("support")


def test_project_files_carry_the_llm_object(tmp_path: Path) -> None:
    project = parse_project({"graphs": {"g": "./g.py:graph"}, "llm": _llm()}, root=tmp_path)

    assert project.llm == _llm()
    assert parse_project({"graphs": {"g": "./g.py:graph"}}, root=tmp_path).llm is None


def test_the_server_refuses_to_start_with_a_literal_key(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from garrison.cli import app

    (tmp_path / "g.py").write_text("graph = None\n")
    project = tmp_path / "langgraph.json"
    leaked = {"kind": "openai", "model": "gpt-4o-mini", "api_key": SECRET}
    _write_project(project, {"profiles": {"support": {"providers": [leaked]}}})

    result = CliRunner().invoke(app, ["check", "--config", str(project)])

    assert result.exit_code == 2
    assert "API keys must not be written in the config file" in result.output
    assert "llm.profiles.support.providers[0].api_key" in result.output
    assert SECRET not in result.output


def test_a_profile_model_takes_its_settings_from_the_profile() -> None:
    with pytest.raises(ValueError, match=r"\['retry'\] come from the profile"):
        ResilientChatModel(profile_name="p", retry={"max_attempts": 1})
    with pytest.raises(ValueError, match="either profile_name or a non-empty list"):
        ResilientChatModel(profile_name="p", models=[OfflineChatModel()])
    with pytest.raises(ValueError, match="either profile_name or a non-empty list"):
        ResilientChatModel(models=[])


def test_providers_of_a_profile_must_be_told_apart() -> None:
    registry = ProfileRegistry(environ={})
    registry.configure({"profiles": {"p": {"providers": [OFFLINE, OFFLINE]}}})

    with pytest.raises(LLMConfigError, match="two providers are offline/garrison-offline"):
        registry.chain("p")
