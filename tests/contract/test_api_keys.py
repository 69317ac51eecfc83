"""The API key repository contract: create, look up, list per tenant, revoke once."""

from dataclasses import replace
from datetime import timedelta

from garrison.auth.api_keys import issue_key
from garrison.domain.clock import utcnow
from garrison.storage.models import ApiKey
from garrison.storage.ports import Storage
from tests.contract.factories import OTHER_TENANT, TENANT


def new_key(tenant_id: str = TENANT, **overrides: object) -> ApiKey:
    issued = issue_key()
    key = ApiKey(
        key_id=issued.key_id,
        secret_hash=issued.secret_hash,
        tenant_id=tenant_id,
        role="user",
        name="ci",
        created_at=utcnow(),
    )
    return replace(key, **overrides)  # type: ignore[arg-type]


async def test_created_key_reads_back_whole(storage: Storage) -> None:
    expires = utcnow() + timedelta(days=30)
    key = new_key(expires_at=expires, role="developer")
    await storage.api_keys.create(key)
    assert await storage.api_keys.get(key.key_id) == key
    assert await storage.api_keys.get("0" * 12) is None


async def test_list_is_per_tenant_newest_first(storage: Storage) -> None:
    older = new_key(created_at=utcnow() - timedelta(minutes=5))
    newer = new_key()
    foreign = new_key(OTHER_TENANT)
    for key in (older, newer, foreign):
        await storage.api_keys.create(key)
    assert [k.key_id for k in await storage.api_keys.list_keys(TENANT)] == [
        newer.key_id,
        older.key_id,
    ]
    assert {k.key_id for k in await storage.api_keys.list_keys(None)} == {
        older.key_id,
        newer.key_id,
        foreign.key_id,
    }


async def test_revoke_once_and_key_becomes_unusable(storage: Storage) -> None:
    key = new_key()
    await storage.api_keys.create(key)
    now = utcnow()
    assert await storage.api_keys.revoke(key.key_id, now)
    assert not await storage.api_keys.revoke(key.key_id, now)  # already revoked
    assert not await storage.api_keys.revoke("f" * 12, now)  # no such key
    stored = await storage.api_keys.get(key.key_id)
    assert stored is not None and stored.revoked_at == now
    assert not stored.usable_at(now)


async def test_expired_key_is_unusable(storage: Storage) -> None:
    key = new_key(expires_at=utcnow() - timedelta(seconds=1))
    await storage.api_keys.create(key)
    stored = await storage.api_keys.get(key.key_id)
    assert stored is not None and not stored.usable_at(utcnow())
