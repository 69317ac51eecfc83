"""Lazy re-encryption on read (issue 4, target E3) on real SQLite and real PostgreSQL.

Rows are written under key k1, the storage is reopened with k2 active (k1 still present),
some rows are read through the storage API, and the raw tables are checked: the rows read
now carry k2, the rows not read still carry k1. The compare-and-set is raced by a writer
that lands between the read and the rewrite; the newer value must survive.
"""

import base64
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from garrison.security import lazy_reseal
from garrison.security.envelope import EnvelopeCipher, kid_of_base64
from garrison.security.field_cipher import FieldCipher
from garrison.security.keyring import Keyring
from garrison.security.store_cipher import SEALED_FIELD
from tests.contract.conftest import (  # noqa: F401 - fixtures
    open_postgres,
    postgres_databases,
    postgres_template,
    postgres_url,
)
from tests.security.test_encryption_api_rows import SECRETS, TENANT, Planted, plant
from tests.security.test_encryption_at_rest import KEY_1, KEY_2, Site, Storage, encryption

# Each planted row and its sealed columns (assistant versions are not read by `get`).
ROWS = {
    "threads": ("thread_id", ("metadata", "config", "values", "interrupts", "error")),
    "runs": ("run_id", ("metadata", "kwargs", "error")),
    "crons": ("cron_id", ("metadata", "payload")),
    "assistants": ("assistant_id", ("metadata",)),
}
Write = Callable[[], Awaitable[int]]
Reseal = Callable[[str, Write], Awaitable[None]]


@pytest.fixture(params=["sqlite", "postgres"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    site = Site(request.param, tmp_path, url)
    yield site
    for storage in list(site.opened):
        await site.close(storage)


def row_kids(site: Site, table: str, row_id: str) -> Counter[str]:
    """Which key sealed each envelope of one API row."""
    key, columns = ROWS[table]
    quoted = ", ".join(f'"{c}"' for c in columns)
    kids: Counter[str] = Counter()
    for row in site.query(f"SELECT {quoted} FROM {table} WHERE {key} = ?", (row_id,)):
        for value in row:
            parsed = orjson.loads(value) if isinstance(value, str) else value
            kids.update(FieldCipher().kids(parsed))
    return kids


def planted_kids(site: Site, planted: Planted) -> dict[str, Counter[str]]:
    ids = {
        "threads": planted.thread_id,
        "runs": planted.run_id,
        "crons": planted.cron_id,
        "assistants": planted.assistant_id,
    }
    return {table: row_kids(site, table, row_id) for table, row_id in ids.items()}


def item_kid(site: Site, prefix: str, key: str) -> str | None:
    ((value,),) = site.query("SELECT value FROM store WHERE prefix = ? AND key = ?", (prefix, key))
    parsed = orjson.loads(value) if isinstance(value, str | bytes) else value
    return kid_of_base64(parsed[SEALED_FIELD])


async def read_all(storage: Storage, planted: Planted) -> None:
    thread = await storage.threads.get(TENANT, planted.thread_id)
    assert thread is not None and thread.values == {"answer": SECRETS["values"]}
    assert thread.metadata["user_email"] == SECRETS["email"]
    run = await storage.runs.get(TENANT, planted.run_id)
    assert run is not None and run.kwargs["input"]["text"] == SECRETS["kwargs"]
    cron = await storage.crons.get(TENANT, planted.cron_id)
    assert cron is not None and cron.metadata["patient_ssn"] == SECRETS["cron_ssn"]
    assistant = await storage.assistants.get(TENANT, planted.assistant_id)
    assert assistant is not None
    assert assistant.metadata["db_password"] == SECRETS["assistant_password"]


def race(monkeypatch: pytest.MonkeyPatch, writer: Callable[[], Awaitable[Any]]) -> list[str]:
    """Run `writer` (a concurrent update) once, between a read and its rewrite."""
    original: Reseal = lazy_reseal.reseal_quietly
    raced: list[str] = []

    async def racing(what: str, write: Write) -> None:
        if not raced:
            raced.append(what)
            await writer()
        await original(what, write)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", racing)
    return raced


# Unit ----------------------------------------------------------------------------------


def test_the_kid_is_read_from_the_header_alone() -> None:
    envelopes = EnvelopeCipher(Keyring([KEY_2, KEY_1]))
    old = EnvelopeCipher(Keyring([KEY_1]))
    big = base64.b64encode(old.seal(b"x" * 100_000, ("ctx",))).decode()
    assert kid_of_base64(big) == "k1" and kid_of_base64(big[:400]) == "k1"
    assert envelopes.is_stale_kid(kid_of_base64(big))
    assert not envelopes.is_stale_kid(
        kid_of_base64(base64.b64encode(envelopes.seal(b"", ("c",))).decode())
    )
    assert not envelopes.is_stale_kid(kid_of_base64("not base64 at all!"))
    assert not envelopes.is_stale_kid(kid_of_base64(base64.b64encode(b"plain text").decode()))


# API rows ------------------------------------------------------------------------------


async def test_reading_api_rows_reseals_them_under_the_active_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    read, unread = await plant(old), await plant(old)
    await site.close(old)
    assert all(kids and set(kids) == {"k1"} for kids in planted_kids(site, read).values())

    # Strict mode keeps working: every row is sealed, under either key.
    storage = await site.open(encryption(KEY_2, KEY_1, strict=True))
    await read_all(storage, read)
    await site.close(storage)

    for table, kids in planted_kids(site, read).items():
        assert set(kids) == {"k2"}, (table, kids)
    for table, kids in planted_kids(site, unread).items():
        assert set(kids) == {"k1"}, (table, kids)
    # The rewritten rows still open, with the old key gone.
    only_new = await site.open(encryption(KEY_2))
    await read_all(only_new, read)


async def test_current_rows_are_read_without_a_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    writes: list[str] = []

    async def record(what: str, write: Write) -> None:
        writes.append(what)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", record)
    await read_all(storage, planted)
    assert writes == []


async def test_a_concurrent_api_row_update_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    planted = await plant(old)
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    newer = {"user_email": "newer@example.com"}
    raced = race(
        monkeypatch, lambda: storage.threads.update(TENANT, planted.thread_id, newer, None)
    )

    thread = await storage.threads.get(TENANT, planted.thread_id)
    assert raced == ["threads row"]
    assert thread is not None and thread.metadata["user_email"] == SECRETS["email"]  # as read
    again = await storage.threads.get(TENANT, planted.thread_id)
    assert again is not None and again.metadata["user_email"] == "newer@example.com"
    # The lost compare-and-set wrote nothing; the next read (above) re-sealed the rest.
    assert set(row_kids(site, "threads", planted.thread_id)) == {"k2"}


async def test_a_failed_rewrite_never_fails_the_read(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = await site.open(encryption(KEY_1))
    planted = await plant(old)
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    original: Reseal = lazy_reseal.reseal_quietly

    async def broken_write() -> int:
        raise RuntimeError("database went away")

    async def failing(what: str, write: Write) -> None:
        await original(what, broken_write)

    monkeypatch.setattr(lazy_reseal, "reseal_quietly", failing)
    with caplog.at_level(logging.WARNING, logger="garrison.security"):
        await read_all(storage, planted)
    assert "encryption.lazy_reseal_failed" in caplog.text
    assert set(row_kids(site, "threads", planted.thread_id)) == {"k1"}  # a later read retries


# Store ---------------------------------------------------------------------------------


async def test_reading_store_items_reseals_them_under_the_active_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    for key in ("read", "unread"):
        await old.store.aput((TENANT, "memories"), key, {"secret": f"CANARY-{key}"})
    await site.close(old)
    prefix = f"{TENANT}.memories"
    assert item_kid(site, prefix, "read") == item_kid(site, prefix, "unread") == "k1"

    storage = await site.open(encryption(KEY_2, KEY_1, strict=True))
    item = await storage.store.aget((TENANT, "memories"), "read")
    assert item is not None and item.value == {"secret": "CANARY-read"}
    await site.close(storage)

    assert item_kid(site, prefix, "read") == "k2"
    assert item_kid(site, prefix, "unread") == "k1"
    only_new = await site.open(encryption(KEY_2))
    item = await only_new.store.aget((TENANT, "memories"), "read")
    assert item is not None and item.value == {"secret": "CANARY-read"}


async def test_a_concurrent_store_put_wins_over_the_rewrite(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await site.open(encryption(KEY_1))
    await old.store.aput((TENANT, "memories"), "profile", {"v": "old"})
    await old.store.aput((TENANT, "memories"), "other", {"v": "other"})
    await site.close(old)
    storage = await site.open(encryption(KEY_2, KEY_1))
    # Another replica: the store's own batch loop is busy with the read being raced.
    replica = await site.open(encryption(KEY_2, KEY_1))
    raced = race(
        monkeypatch, lambda: replica.store.aput((TENANT, "memories"), "profile", {"v": "newer"})
    )

    item = await storage.store.aget((TENANT, "memories"), "profile")
    assert raced == ["store item"] and item is not None and item.value == {"v": "old"}
    again = await storage.store.aget((TENANT, "memories"), "profile")
    assert again is not None and again.value == {"v": "newer"}
    assert item_kid(site, f"{TENANT}.memories", "profile") == "k2"  # the replica's put
    # The rewrite is live here: an item read without a race is re-sealed.
    assert item_kid(site, f"{TENANT}.memories", "other") == "k1"
    await storage.store.aget((TENANT, "memories"), "other")
    assert item_kid(site, f"{TENANT}.memories", "other") == "k2"
