"""The assistant repository contract: versions, system assistants, search, tenancy."""

import pytest

from garrison.domain.errors import ConflictError, NotFoundError
from garrison.storage.models import AssistantPatch, AssistantQuery, IfExists, Page, SortOrder
from garrison.storage.ports import Storage
from tests.contract.factories import OTHER_TENANT, TENANT, new_assistant


async def test_create_and_get(storage: Storage) -> None:
    new = new_assistant(metadata={"team": "a"}, config={"tags": ["x"]})
    created = await storage.assistants.create(TENANT, "owner", new, IfExists.RAISE)
    assert created.version == 1 and created.metadata == {"team": "a"}
    assert await storage.assistants.get(TENANT, new.assistant_id) == created


async def test_duplicate_ids(storage: Storage) -> None:
    new = new_assistant()
    first = await storage.assistants.create(TENANT, None, new, IfExists.RAISE)
    with pytest.raises(ConflictError):
        await storage.assistants.create(TENANT, None, new, IfExists.RAISE)
    assert await storage.assistants.create(TENANT, None, new, IfExists.DO_NOTHING) == first
    with pytest.raises(ConflictError):  # another tenant cannot take or read the id
        await storage.assistants.create(OTHER_TENANT, None, new, IfExists.DO_NOTHING)


async def test_system_assistants_are_shared_and_created_once(storage: Storage) -> None:
    system = new_assistant(graph_id="shared", metadata={"created_by": "system"})
    await storage.assistants.ensure_system([system])
    await storage.assistants.ensure_system([system])
    for tenant in (TENANT, OTHER_TENANT):
        found = await storage.assistants.get(tenant, system.assistant_id)
        assert found is not None and found.tenant_id is None
    assert await storage.assistants.count(TENANT, AssistantQuery()) == 1


async def test_update_appends_a_version_and_merges_metadata(storage: Storage) -> None:
    new = new_assistant(metadata={"a": 1}, name="first")
    await storage.assistants.create(TENANT, None, new, IfExists.RAISE)
    updated = await storage.assistants.update(
        TENANT, new.assistant_id, AssistantPatch(metadata={"b": 2}, config={"tags": ["t"]})
    )
    assert updated.version == 2 and updated.metadata == {"a": 1, "b": 2}
    assert updated.name == "first" and updated.config == {"tags": ["t"]}
    versions = await storage.assistants.versions(TENANT, new.assistant_id, None, Page())
    assert [v.version for v in versions] == [2, 1]
    assert versions[1].metadata == {"a": 1}
    only_b = await storage.assistants.versions(TENANT, new.assistant_id, {"b": 2}, Page())
    assert [v.version for v in only_b] == [2]


async def test_set_latest_restores_a_version(storage: Storage) -> None:
    new = new_assistant(name="v1")
    await storage.assistants.create(TENANT, None, new, IfExists.RAISE)
    await storage.assistants.update(TENANT, new.assistant_id, AssistantPatch(name="v2"))
    restored = await storage.assistants.set_latest(TENANT, new.assistant_id, 1)
    assert restored.version == 1 and restored.name == "v1"
    with pytest.raises(NotFoundError):
        await storage.assistants.set_latest(TENANT, new.assistant_id, 9)


async def test_search_filters_sorts_and_pages(storage: Storage) -> None:
    for index, name in enumerate(["Alpha bot", "beta BOT", "gamma"]):
        await storage.assistants.create(
            TENANT,
            None,
            new_assistant(graph_id="g1" if index < 2 else "g2", name=name, metadata={"i": index}),
            IfExists.RAISE,
        )
    by_name, _ = await storage.assistants.search(TENANT, AssistantQuery(name="bot"))
    assert sorted(a.name for a in by_name) == ["Alpha bot", "beta BOT"]
    by_graph, _ = await storage.assistants.search(TENANT, AssistantQuery(graph_id="g2"))
    assert [a.name for a in by_graph] == ["gamma"]
    by_meta, _ = await storage.assistants.search(TENANT, AssistantQuery(metadata={"i": 1}))
    assert [a.name for a in by_meta] == ["beta BOT"]
    ordered, more = await storage.assistants.search(
        TENANT, AssistantQuery(sort_by="name", sort_order=SortOrder.ASC, page=Page(limit=2))
    )
    assert [a.name for a in ordered] == ["Alpha bot", "beta BOT"] and more
    last, more = await storage.assistants.search(
        TENANT, AssistantQuery(sort_by="name", sort_order=SortOrder.ASC, page=Page(2, 2))
    )
    assert [a.name for a in last] == ["gamma"] and not more
    assert await storage.assistants.count(TENANT, AssistantQuery(graph_id="g1")) == 2


async def test_delete_and_tenancy(storage: Storage) -> None:
    new = new_assistant()
    await storage.assistants.create(TENANT, None, new, IfExists.RAISE)
    assert await storage.assistants.get(OTHER_TENANT, new.assistant_id) is None
    assert not await storage.assistants.delete(OTHER_TENANT, new.assistant_id)
    assert await storage.assistants.search(OTHER_TENANT, AssistantQuery()) == ([], False)
    assert await storage.assistants.delete(TENANT, new.assistant_id)
    assert await storage.assistants.get(TENANT, new.assistant_id) is None
