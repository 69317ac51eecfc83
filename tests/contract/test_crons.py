"""The cron repository contract: CRUD, search, due crons and tick claiming."""

import asyncio
import uuid
from datetime import timedelta

import pytest

from garrison.domain.clock import utcnow
from garrison.domain.errors import NotFoundError
from garrison.storage.models import CronPatch, CronQuery, NewCron
from garrison.storage.ports import Storage
from tests.contract.factories import OTHER_TENANT, TENANT, make_thread


def new_cron(thread_id: str | None = None, **overrides: object) -> NewCron:
    fields: dict[str, object] = {
        "cron_id": str(uuid.uuid4()),
        "assistant_id": "assistant-1",
        "thread_id": thread_id,
        "schedule": "*/5 * * * *",
        "timezone": None,
        "payload": {"input": {"x": 1}},
        "metadata": {"team": "a"},
        "end_time": None,
        "next_run_date": utcnow() - timedelta(seconds=1),
        "enabled": True,
        "on_run_completed": "delete",
        "user_id": "u1",
    }
    fields.update(overrides)
    return NewCron(**fields)  # type: ignore[arg-type]


async def test_create_get_update_delete(storage: Storage) -> None:
    end = utcnow() + timedelta(days=1)
    cron = await storage.crons.create(TENANT, "u1", new_cron(end_time=end))
    assert cron.end_time is not None and cron.payload == {"input": {"x": 1}}
    kept = await storage.crons.update(TENANT, cron.cron_id, CronPatch(metadata={"b": 2}))
    assert kept.end_time == cron.end_time and kept.metadata == {"team": "a", "b": 2}
    cleared = await storage.crons.update(TENANT, cron.cron_id, CronPatch(end_time=None))
    assert cleared.end_time is None
    assert await storage.crons.get(OTHER_TENANT, cron.cron_id) is None
    assert await storage.crons.delete(TENANT, cron.cron_id)
    assert await storage.crons.get(TENANT, cron.cron_id) is None


async def test_thread_crons_need_a_visible_thread(storage: Storage) -> None:
    thread = await make_thread(storage, OTHER_TENANT)
    with pytest.raises(NotFoundError):
        await storage.crons.create(TENANT, None, new_cron(thread.thread_id))


async def test_search_and_count(storage: Storage) -> None:
    thread = await make_thread(storage)
    on_thread = await storage.crons.create(TENANT, None, new_cron(thread.thread_id))
    await storage.crons.create(TENANT, None, new_cron(enabled=False, metadata={"team": "b"}))
    found, more = await storage.crons.search(TENANT, CronQuery(thread_id=thread.thread_id))
    assert [c.cron_id for c in found] == [on_thread.cron_id] and not more
    assert await storage.crons.count(TENANT, CronQuery(metadata={"team": "b"})) == 1
    disabled, _ = await storage.crons.search(TENANT, CronQuery(enabled=False))
    assert len(disabled) == 1
    assert await storage.crons.count(OTHER_TENANT, CronQuery()) == 0


async def test_due_lists_enabled_crons_whose_time_came(storage: Storage) -> None:
    due = await storage.crons.create(TENANT, None, new_cron())
    await storage.crons.create(TENANT, None, new_cron(next_run_date=utcnow() + timedelta(hours=1)))
    await storage.crons.create(TENANT, None, new_cron(enabled=False))
    assert [c.cron_id for c in await storage.crons.due(utcnow(), 10)] == [due.cron_id]


async def test_only_one_caller_wins_a_tick(storage: Storage) -> None:
    cron = await storage.crons.create(TENANT, None, new_cron())
    assert cron.next_run_date is not None
    following = cron.next_run_date + timedelta(minutes=5)
    wins = await asyncio.gather(
        *[storage.crons.advance(cron.cron_id, cron.next_run_date, following) for _ in range(5)]
    )
    assert sorted(wins) == [False, False, False, False, True]
    assert await storage.crons.due(utcnow(), 10) == []


async def test_advancing_to_none_disables(storage: Storage) -> None:
    cron = await storage.crons.create(TENANT, None, new_cron())
    assert cron.next_run_date is not None
    assert await storage.crons.advance(cron.cron_id, cron.next_run_date, None)
    stopped = await storage.crons.get(TENANT, cron.cron_id)
    assert stopped is not None and not stopped.enabled and stopped.next_run_date is None
