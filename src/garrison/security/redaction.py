"""PII redaction for text that leaves the request: log lines and audit summaries.

Never applied to stored user state (threads, runs, checkpoints, store items): a user's data
is theirs to keep verbatim; only what operators read is scrubbed. Each finding is replaced
by a marker naming its kind (`[email]`, `[card]`...), so a log still says *what* was there.

Card numbers must pass the Luhn check: an order id of 16 digits is left alone, a real card
number is not. SSNs only in their dashed form: nine bare digits are too often something else.
"""

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["RedactionFilter", "Redactor", "luhn_valid"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by single spaces or dashes (as cards are printed). Card
# numbers start with 2-6 (Mastercard, Amex, Visa, Discover...): epoch milliseconds do not.
_CARD = re.compile(r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?![\d-])")
# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
# E.164 (+ and 8-15 digits, spaces/dashes allowed) or North American (555) 123-4567 forms.
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\d){6,13}(?!\d)"
    r"|(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)"
)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[card]" if luhn_valid(digits) else match.group()


class Redactor:
    """Replaces emails, phone numbers, Luhn-valid card numbers, SSNs and any extra patterns
    (`settings.audit.redact_patterns`, regular expressions) in text."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        # Cards first: their digit runs would otherwise be half-eaten by the phone pattern.
        self._rules: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
            (_EMAIL, "[email]"),
            (_CARD, _card),
            (_SSN, "[ssn]"),
            (_PHONE, "[phone]"),
        ]
        self._rules += [(re.compile(pattern), "[redacted]") for pattern in extra_patterns]

    def redact(self, text: str) -> str:
        for pattern, replacement in self._rules:
            text = pattern.sub(replacement, text)
        return text

    def redact_arg(self, value: Any) -> Any:
        """A log-call argument, redacted: numbers stay numbers (so `%d` still formats);
        anything else becomes its redacted `str` (what `%s`, by far the usual, prints)."""
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(value if isinstance(value, str) else str(value))


class RedactionFilter(logging.Filter):
    """A handler filter that redacts each record's message, arguments, extra string fields
    and traceback text before any formatter sees them.

    Arguments are redacted one by one rather than merged into the message, so formatters
    that read them (uvicorn's access lines: method, path, status) keep working.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = Redactor(patterns)

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        if isinstance(record.msg, str):
            record.msg = redactor.redact(record.msg)
        else:
            record.msg = redactor.redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(redactor.redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redactor.redact_arg(arg) for key, arg in record.args.items()}
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redactor.redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # Exception messages quote user input as often as log messages do.
            record.exc_text = redactor.redact(record.exc_text)
            record.exc_info = None
        return True


# Attributes every LogRecord has; the others came from `extra=` and may carry user text.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}
