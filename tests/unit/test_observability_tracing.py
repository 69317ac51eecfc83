"""When tracing turns on, and the settings that steer observability."""

import pytest

from garrison.config.settings import Settings
from garrison.observability import tracing


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "GARRISON_OTEL_ENABLED",
        "GARRISON_LOG_FORMAT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("setting", "environment", "expected"),
    [
        (None, {}, False),  # the default: off
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        (True, {}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        (True, {"OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_wanted_when_enabled_or_an_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch,
    setting: bool | None,
    environment: dict[str, str],
    expected: bool,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted(setting) is expected


def test_observability_settings_default_to_text_logs_and_no_tracing() -> None:
    settings = Settings.load()
    assert settings.observability.log_format == "text"
    assert settings.observability.otel_enabled is None
    assert not tracing.enabled()


def test_observability_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GARRISON_LOG_FORMAT", "json")
    monkeypatch.setenv("GARRISON_OTEL_ENABLED", "true")
    observability = Settings.load().observability
    assert observability.log_format == "json" and observability.otel_enabled is True
    monkeypatch.setenv("GARRISON_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        Settings.load()
