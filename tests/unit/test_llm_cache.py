"""The response cache: LRU/TTL mechanics, what is cacheable, and cache on/off end to end."""

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage

from garrison.llm import OfflineChatModel, Provider, ResilientChatModel
from garrison.llm.cache import ResponseCache, cache_key, is_cacheable
from garrison.llm.profiles import CacheSettings
from tests.support.fakellm import (
    Answer,
    FakeClock,
    FakeOpenAI,
    openai_entry,
    profile_model,
    running,
    sample,
)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as fake:
        fake.default = Answer("A deterministic answer.")
        yield fake


def test_entries_expire_and_the_least_recently_used_is_evicted() -> None:
    clock = FakeClock()
    cache = ResponseCache(max_entries=2, ttl_seconds=10, clock=clock)
    cache.put("a", [AIMessageChunk(content="A", id="run-1")])
    cache.put("b", [AIMessageChunk(content="B")])

    hit = cache.get("a")
    assert hit is not None and hit[0].content == "A"
    assert hit[0].id is None  # replays get ids of their own run
    cache.put("c", [AIMessageChunk(content="C")])  # evicts "b", used least recently
    assert cache.get("b") is None
    clock.advance(10)
    assert cache.get("a") is None
    assert len(cache) == 1


def test_cached_chunks_are_copies() -> None:
    cache = ResponseCache(max_entries=1, ttl_seconds=10)
    cache.put("k", [AIMessageChunk(content="original")])
    first = cache.get("k")
    assert first is not None
    first[0].content = "mutated by a caller"

    second = cache.get("k")
    assert second is not None and second[0].content == "original"


OFFLINE = Provider.of(OfflineChatModel())
OTHER = Provider("other", "m", OfflineChatModel())


def test_cache_key_covers_what_determines_the_answer() -> None:
    messages = [SystemMessage("be brief"), HumanMessage("hi", id="random-1")]
    base = cache_key([OFFLINE], messages, None, {})

    assert (
        cache_key([OFFLINE], [SystemMessage("be brief"), HumanMessage("hi", id="x")], None, {})
        == base
    )
    assert cache_key([OFFLINE], [HumanMessage("hi")], None, {}) != base
    assert cache_key([OTHER], messages, None, {}) != base
    assert cache_key([OFFLINE], messages, ["\n"], {}) != base
    assert cache_key([OFFLINE], messages, None, {"tools": [{"name": "t"}]}) != base


@pytest.mark.parametrize(
    ("temperature", "kwargs", "expected"),
    [
        (0.0, {}, True),
        (0.7, {}, False),
        (None, {}, False),
        (0.7, {"temperature": 0}, True),
        (0.0, {"temperature": 0.2}, False),
    ],
)
def test_only_deterministic_requests_are_cacheable(
    temperature: float | None, kwargs: dict[str, float], expected: bool
) -> None:
    from langchain_openai import ChatOpenAI

    remote = Provider.of(ChatOpenAI(model="m", api_key="k", temperature=temperature, max_retries=0))

    assert is_cacheable([remote, OFFLINE], kwargs) is expected
    assert is_cacheable([OFFLINE], {}) is True


async def test_identical_deterministic_requests_are_served_from_the_cache(
    server: FakeOpenAI,
) -> None:
    profile = f"cached-{uuid.uuid4().hex[:8]}"
    model = profile_model(
        [openai_entry(server, temperature=0)], name=profile, cache={"enabled": True}
    )

    first = await model.ainvoke("hi")
    second = await model.ainvoke("hi")
    streamed = [chunk async for chunk in model.astream("hi")]
    other = await model.ainvoke("something else")

    assert first.text == second.text == "".join(c.text for c in streamed) == other.text
    assert second.response_metadata["garrison_cache"] == "hit"
    assert "garrison_cache" not in first.response_metadata
    assert len([c for c in streamed if c.text]) == 3  # replayed token by token
    assert second.id != first.id
    assert len(server.requests) == 2  # "hi" once, "something else" once
    assert sample("langgraph_llm_cache_lookups_total", profile=profile, result="hit") == 2
    assert sample("langgraph_llm_cache_lookups_total", profile=profile, result="miss") == 2


@pytest.mark.parametrize(
    ("entry_extra", "cache"),
    [
        ({"temperature": 0}, {"enabled": False}),
        ({"temperature": 0.8}, {"enabled": True}),
        ({}, {"enabled": True}),
    ],
    ids=["off-by-config", "sampling", "provider-default-temperature"],
)
async def test_cache_stays_out_of_the_way(
    server: FakeOpenAI, entry_extra: dict[str, float], cache: dict[str, bool]
) -> None:
    model = profile_model([openai_entry(server, **entry_extra)], cache=cache)

    await model.ainvoke("hi")
    await model.ainvoke("hi")

    assert len(server.requests) == 2


async def test_explicit_model_lists_have_a_cache_of_their_own() -> None:
    calls: list[int] = []

    def counting(messages: object, tools: object) -> str:
        calls.append(1)
        return "counted"

    model = ResilientChatModel(
        models=[OfflineChatModel(policy=counting)], response_cache=CacheSettings(enabled=True)
    )

    assert (await model.ainvoke("hi")).text == (await model.ainvoke("hi")).text == "counted"
    assert len(calls) == 1
