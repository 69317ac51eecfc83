"""Fake LLM providers over real HTTP on loopback, scriptable per request.

Point ``ChatOpenAI(base_url=server.base_url)`` at :class:`FakeOpenAI` and
``ChatAnthropic(base_url=server.url)`` at :class:`FakeAnthropic`; script what the
next requests get with ``server.script(Fail(500), Answer("hi"))``.
"""

from tests.support.fakellm.anthropic import FakeAnthropic
from tests.support.fakellm.behaviours import (
    Answer,
    Behaviour,
    Drop,
    Fail,
    FakeToolCall,
    Hang,
    Stall,
)
from tests.support.fakellm.http import FakeHTTPServer, RecordedRequest
from tests.support.fakellm.openai import FakeOpenAI
from tests.support.fakellm.testing import (
    FakeClock,
    anthropic_entry,
    openai_entry,
    profile_model,
    running,
    sample,
)

__all__ = [
    "Answer",
    "Behaviour",
    "Drop",
    "Fail",
    "FakeAnthropic",
    "FakeClock",
    "FakeHTTPServer",
    "FakeOpenAI",
    "FakeToolCall",
    "Hang",
    "RecordedRequest",
    "Stall",
    "anthropic_entry",
    "openai_entry",
    "profile_model",
    "running",
    "sample",
]
