"""What a fake provider does with one request."""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the fake model makes."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str = "call_fake_0"


@dataclass(frozen=True)
class Answer:
    """Answer normally: text and/or tool calls, streamed one word per event."""

    text: str = "Hello from the fake provider."
    tool_calls: tuple[FakeToolCall, ...] = ()
    token_delay: float = 0.0
    input_tokens: int = 11

    def tokens(self) -> list[str]:
        return re.findall(r"\S+\s*", self.text)

    @property
    def output_tokens(self) -> int:
        return len(self.tokens()) + len(self.tool_calls)


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error status (e.g. 429 with ``Retry-After``)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = "fake failure"


@dataclass(frozen=True)
class Hang:
    """Send nothing at all for ``seconds`` (then close the connection)."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Stall:
    """Stream the response head, then go silent before the first token."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Drop:
    """Stream ``after_tokens`` tokens of ``answer``, then drop the connection."""

    after_tokens: int = 0
    answer: Answer = Answer(text="This answer will be cut off before it is complete.")


Behaviour = Answer | Fail | Hang | Stall | Drop
