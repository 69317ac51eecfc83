"""The thread repository contract: CRUD, search, copy, state, TTL, tenancy."""

import asyncio
import uuid

import pytest

from garrison.domain.access import AccessFilter
from garrison.domain.clock import after, utcnow
from garrison.domain.errors import ConflictError, NotFoundError
from garrison.domain.threads import ThreadStatus
from garrison.storage.models import IfExists, Page, SortOrder, ThreadQuery, ThreadState
from garrison.storage.ports import Storage, TTLSpec
from tests.contract.factories import OTHER_TENANT, TENANT, make_thread, new_run


async def test_create_get_and_duplicates(storage: Storage) -> None:
    thread_id = str(uuid.uuid4())
    created = await storage.threads.create(TENANT, "u1", thread_id, {"a": 1}, None, IfExists.RAISE)
    assert created.status is ThreadStatus.IDLE and created.metadata == {"a": 1}
    assert created.values is None and created.interrupts == {} and created.ttl is None
    assert await storage.threads.get(TENANT, thread_id) == created
    with pytest.raises(ConflictError):
        await storage.threads.create(TENANT, "u1", thread_id, {}, None, IfExists.RAISE)
    same = await storage.threads.create(TENANT, "u1", thread_id, {}, None, IfExists.DO_NOTHING)
    assert same == created
    with pytest.raises(ConflictError):
        await storage.threads.create(OTHER_TENANT, None, thread_id, {}, None, IfExists.DO_NOTHING)
    assert await storage.threads.get(OTHER_TENANT, thread_id) is None


async def test_update_merges_metadata_and_sets_ttl(storage: Storage) -> None:
    thread = await make_thread(storage, a=1)
    updated = await storage.threads.update(TENANT, thread.thread_id, {"b": 2}, TTLSpec("delete", 5))
    assert updated.metadata == {"a": 1, "b": 2}
    assert updated.ttl is not None and updated.ttl.minutes == 5
    assert updated.ttl.expires_at > utcnow()
    with pytest.raises(NotFoundError):
        await storage.threads.update(OTHER_TENANT, thread.thread_id, {}, None)


async def test_search_filters(storage: Storage) -> None:
    red = await make_thread(storage, color="red", tags=["x", "y"])
    blue = await make_thread(storage, color="blue")
    await make_thread(storage, OTHER_TENANT, color="red")
    await storage.threads.record_state(
        TENANT, blue.thread_id, ThreadState({"answer": {"n": 42}}, {}, True)
    )

    async def ids(query: ThreadQuery) -> set[str]:
        found, _ = await storage.threads.search(TENANT, query)
        return {t.thread_id for t in found}

    assert await ids(ThreadQuery(metadata={"color": "red"})) == {red.thread_id}
    assert await ids(ThreadQuery(metadata={"tags": ["y"]})) == {red.thread_id}
    assert await ids(ThreadQuery(values={"answer": {"n": 42}})) == {blue.thread_id}
    assert await ids(ThreadQuery(status=ThreadStatus.INTERRUPTED)) == {blue.thread_id}
    assert await ids(ThreadQuery(ids=[red.thread_id])) == {red.thread_id}
    assert await ids(ThreadQuery(ids=[])) == set()
    assert await storage.threads.count(TENANT, ThreadQuery()) == 2
    oldest_first, more = await storage.threads.search(
        TENANT, ThreadQuery(sort_by="created_at", sort_order=SortOrder.ASC, page=Page(limit=1))
    )
    assert [t.thread_id for t in oldest_first] == [red.thread_id] and more


async def test_record_state_refuses_a_busy_thread(storage: Storage) -> None:
    thread = await make_thread(storage)
    await storage.runs.create(TENANT, None, new_run(thread.thread_id), create_thread=False)
    with pytest.raises(ConflictError):
        await storage.threads.record_state(TENANT, thread.thread_id, ThreadState({}, {}, False))


async def test_record_state_sets_values_and_status(storage: Storage) -> None:
    thread = await make_thread(storage)
    interrupts = {"task-1": [{"id": "i1", "value": "?"}]}
    updated = await storage.threads.record_state(
        TENANT, thread.thread_id, ThreadState({"v": 1}, interrupts, True)
    )
    assert updated.values == {"v": 1} and updated.interrupts == interrupts
    assert updated.status is ThreadStatus.INTERRUPTED
    assert updated.state_updated_at >= thread.state_updated_at


async def test_copy_keeps_metadata_and_state_under_a_new_id(storage: Storage) -> None:
    thread = await make_thread(storage, a=1)
    await storage.threads.record_state(TENANT, thread.thread_id, ThreadState({"v": 2}, {}, False))
    target = str(uuid.uuid4())
    copied = await storage.threads.copy(TENANT, "u2", thread.thread_id, target)
    assert copied.thread_id == target and copied.metadata == {"a": 1}
    assert copied.values == {"v": 2} and copied.status is ThreadStatus.IDLE
    with pytest.raises(NotFoundError):
        await storage.threads.copy(OTHER_TENANT, None, thread.thread_id, str(uuid.uuid4()))


async def test_expired_threads_are_listed_for_the_sweeper(storage: Storage) -> None:
    short = await make_thread(storage)
    await storage.threads.update(TENANT, short.thread_id, None, TTLSpec("keep_latest", 0.001))
    long = await make_thread(storage)
    await storage.threads.update(TENANT, long.thread_id, None, TTLSpec("delete", 60))
    await asyncio.sleep(0.1)
    expired = await storage.threads.expired(after(utcnow(), 0), 10)
    assert expired == [(TENANT, short.thread_id, "keep_latest")]
    await storage.threads.clear_ttl(TENANT, short.thread_id)
    assert await storage.threads.expired(utcnow(), 10) == []


async def test_ids_with_metadata_and_delete(storage: Storage) -> None:
    mine = await make_thread(storage, assistant_id="a1")
    await make_thread(storage, assistant_id="a2")
    assert await storage.threads.ids_with_metadata(TENANT, {"assistant_id": "a1"}) == [
        mine.thread_id
    ]
    assert not await storage.threads.delete(OTHER_TENANT, mine.thread_id)
    assert await storage.threads.delete(TENANT, mine.thread_id)
    assert await storage.threads.get(TENANT, mine.thread_id) is None


async def test_access_filters_hide_rows_from_search_and_count(storage: Storage) -> None:
    """Authorization filters apply in the query itself: pages and totals never count a
    hidden row."""
    tag = uuid.uuid4().hex

    async def thread(row_owner: str, **metadata: object) -> str:
        created = await storage.threads.create(
            TENANT, row_owner, str(uuid.uuid4()), {"tag": tag, **metadata}, None, IfExists.RAISE
        )
        return created.thread_id

    alice = await thread("alice", owner="alice", members=["alice", "bob"])
    bob = await thread("bob", owner="bob", members=["bob"])
    mallory = await thread("mallory", owner="alice")  # metadata claims alice, the row does not

    async def visible(access: AccessFilter) -> set[str]:
        query = ThreadQuery(metadata={"tag": tag}, access=access, page=Page(limit=10))
        found, _ = await storage.threads.search(TENANT, query)
        assert await storage.threads.count(TENANT, query) == len(found)
        return {t.thread_id for t in found}

    assert await visible(AccessFilter(owner="alice")) == {alice}
    assert await visible(AccessFilter(metadata=({"owner": "alice"},))) == {alice, mallory}
    assert await visible(AccessFilter(metadata=({"members": ["bob"]},))) == {alice, bob}
    both = AccessFilter(metadata=({"owner": "alice"},), owner="alice")
    assert await visible(both) == {alice}
    page, more = await storage.threads.search(
        TENANT, ThreadQuery(metadata={"tag": tag}, access=AccessFilter(owner="bob"), page=Page(1))
    )
    assert [t.thread_id for t in page] == [bob] and more is False
