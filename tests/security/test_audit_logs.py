"""Log lines as the configured handler writes them: redacted in both formats, and CR/LF in
user input cannot forge a line (A2)."""

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from garrison.observability import logs

FORGED = "alice\r\n2026-11-22 06:00:00,000 INFO garrison: admin login OK"


@pytest.fixture
def configure() -> Iterator[None]:
    """Lets a test apply the real logging config, and puts pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(log_format: logs.LogFormat, patterns: list[str] | None = None) -> None:
    logs.configure_logging(log_format, "info", patterns or [])
    logger = logging.getLogger("garrison.test")
    logger.info("user %s wrote to bob@example.com about card 4111111111111111", FORGED)
    try:
        raise ValueError(f"bad input {FORGED} EMP-1234")
    except ValueError:
        logger.exception("failed for %s", "555-123-4567")


def test_text_lines_cannot_be_forged_and_are_redacted(
    configure: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _emit("text", [r"EMP-\d+"])
    lines = capsys.readouterr().err.splitlines()
    records = [line for line in lines if line[:1].isdigit()]
    assert len(records) == 2, lines  # the two records, and nothing that looks like a third
    assert records[0].endswith(
        "user alice\\r\\n2026-11-22 06:00:00,000 INFO garrison: admin login OK "
        "wrote to [email] about card [card]"
    )
    text = "\n".join(lines)
    assert "bob@example.com" not in text and "4111111111111111" not in text
    assert "555-123-4567" not in text and "EMP-1234" not in text
    # Traceback lines are indented, so a forged one cannot start a line.
    assert all(line.startswith((" ", "Traceback")) or line[:1].isdigit() for line in lines)


def test_json_lines_are_one_object_each_and_redacted(
    configure: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _emit("json")
    lines = capsys.readouterr().err.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert len(parsed) == 2
    assert parsed[0]["message"].startswith("user " + FORGED)  # escaped by JSON, intact
    assert "[email]" in parsed[0]["message"] and "[card]" in parsed[0]["message"]
    assert "[phone]" in parsed[1]["message"] and "ValueError" in parsed[1]["exception"]
