"""PII redaction of log lines and audit summaries (table-driven)."""

import logging

import pytest

from garrison.security.redaction import RedactionFilter, Redactor, luhn_valid

CASES = [
    # (input, expected)
    ("mail alice.smith+tag@example.co.uk now", "mail [email] now"),
    ("user BOB@Corp.EXAMPLE.com", "user [email]"),
    ("visa 4111 1111 1111 1111 ok", "visa [card] ok"),
    ("mc 5555-5555-5555-4444", "mc [card]"),
    ("amex 378282246310005", "amex [card]"),
    # Same shape, failing Luhn: an order id, kept.
    ("order 4111111111111112", "order 4111111111111112"),
    # Epoch milliseconds never look like cards (they start with 1).
    ("at 1732258000000 ms", "at 1732258000000 ms"),
    ("ssn 123-45-6789.", "ssn [ssn]."),
    # Never-issued SSNs and bare nine digits are not SSNs.
    ("ssn 000-12-3456", "ssn 000-12-3456"),
    ("id 123456789", "id 123456789"),
    ("call +1 415 555 2671", "call [phone]"),
    ("call +447911123456", "call [phone]"),
    ("call (415) 555-2671 or 415-555-2671", "call [phone] or [phone]"),
    # Ids, dates and versions stay readable.
    ("thread 123e4567-e89b-12d3-a456-426614174000", "thread 123e4567-e89b-12d3-a456-426614174000"),
    ("on 2026-11-22 v1.2.3 port 8000", "on 2026-11-22 v1.2.3 port 8000"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redactor_replaces_pii_and_keeps_the_rest(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("number", "valid"),
    [("4111111111111111", True), ("4111111111111112", False), ("79927398713", True)],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


def test_extra_patterns_are_redacted() -> None:
    redactor = Redactor([r"EMP-\d{6}", r"(?i)secret-[a-z]+"])
    assert redactor.redact("EMP-123456 said SECRET-sauce") == "[redacted] said [redacted]"


def _record(msg: object, args: object = None, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]
    record.__dict__.update(extra)
    return record


def test_filter_redacts_message_args_and_extras_but_keeps_numbers() -> None:
    log_filter = RedactionFilter()
    record = _record(
        "user %s paid %d with %s", ("a@b.io", 12, {"card": "4111111111111111"}), note="x@y.org"
    )
    assert log_filter.filter(record)
    assert record.getMessage() == "user [email] paid 12 with {'card': '[card]'}"
    assert record.__dict__["note"] == "[email]"


def test_filter_keeps_the_shape_of_uvicorn_access_args() -> None:
    record = _record('%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", "/x?e=a@b.io", "1.1", 200))
    RedactionFilter().filter(record)
    assert record.args == ("1.2.3.4:5", "GET", "/x?e=[email]", "1.1", 200)


def test_filter_redacts_tracebacks() -> None:
    try:
        raise ValueError("bad ssn 123-45-6789")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    RedactionFilter().filter(record)
    assert record.exc_text is not None
    assert "[ssn]" in record.exc_text and "123-45-6789" not in record.exc_text
    assert logging.Formatter().format(record).count("123-45-6789") == 0
