"""The API tables at rest on real SQLite and real PostgreSQL (issue 4, targets E1, E3, E4):
run input and errors, thread state copies, cron payloads and sensitive metadata keys are
sealed by the storage adapters; everything else keeps working through them."""

import dataclasses
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from garrison.domain.clock import after, utcnow
from garrison.security.envelope import DecryptionError, PlaintextRefusedError
from garrison.security.field_cipher import FieldCipher, sealed_envelope
from garrison.security.keyring import Keyring
from garrison.security.rotation import rotate_data
from garrison.storage.models import (
    AssistantPatch,
    IfExists,
    NewCron,
    Page,
    RunEnd,
    RunOutcome,
    SortOrder,
    ThreadQuery,
    ThreadState,
)
from tests.contract.conftest import (  # noqa: F401 - fixtures
    open_postgres,
    postgres_databases,
    postgres_template,
    postgres_url,
)
from tests.contract.factories import new_assistant, new_run
from tests.security.test_encryption_at_rest import KEY_1, KEY_2, Site, Storage, encryption

TENANT = "tenant-a"
SECRETS = {
    "kwargs": "CANARY-run-input-5e11",
    "kwargs_list": "CANARY-run-list-77aa",
    "kwargs_nested": "CANARY-run-nested-0c0c",
    "values": "CANARY-thread-values-3b3b",
    "interrupt": "CANARY-interrupt-9d9d",
    "config": "CANARY-config-1f1f",
    "run_error": "CANARY-run-error-2e2e",
    "cron_payload": "CANARY-cron-payload-4a4a",
    "email": "CANARY-email-6c6c",
    "nested_phone": "CANARY-phone-8e8e",
    "run_token": "CANARY-token-abab",
    "cron_ssn": "CANARY-ssn-cdcd",
    "assistant_password": "CANARY-password-efef",
}
API_COLUMNS = {
    "threads": ("thread_id", ("metadata", "config", "values", "interrupts", "error")),
    "runs": ("run_id", ("metadata", "kwargs", "error")),
    "crons": ("cron_id", ("metadata", "payload")),
    "assistants": ("assistant_id", ("metadata",)),
    "assistant_versions": ("assistant_id", ("metadata",)),
}


def leaked(data: bytes) -> list[str]:
    return [name for name, canary in SECRETS.items() if canary.encode() in data]


@dataclasses.dataclass
class Planted:
    thread_id: str
    run_id: str
    cron_id: str
    assistant_id: str


async def plant(storage: Storage) -> Planted:
    """Every sealed column, written through the adapter as the services write them."""
    assistant = await storage.assistants.create(
        TENANT,
        "owner",
        new_assistant(metadata={"db_password": SECRETS["assistant_password"], "team": "blue"}),
        IfExists.RAISE,
    )
    await storage.assistants.update(TENANT, assistant.assistant_id, AssistantPatch(name="v2"))
    thread_id = str(uuid.uuid4())
    await storage.threads.create(
        TENANT,
        "owner",
        thread_id,
        {
            "user_email": SECRETS["email"],
            "team": "blue",
            "owner": {"phone": SECRETS["nested_phone"]},
        },
        None,
        IfExists.RAISE,
    )
    run = dataclasses.replace(
        new_run(thread_id),
        metadata={"session_token": SECRETS["run_token"], "source": "api"},
        kwargs={
            "input": {
                "text": SECRETS["kwargs"],
                "items": [SECRETS["kwargs_list"]],
                "deep": {"er": {"x": SECRETS["kwargs_nested"]}},
            }
        },
        thread_config={"configurable": {"hint": SECRETS["config"]}},
    )
    created = await storage.runs.create(TENANT, "owner", run, create_thread=False)
    claim = await storage.runs.claim("worker-1", 30)
    assert claim.claimed is not None and claim.claimed.run.kwargs == run.kwargs
    state = ThreadState(
        values={"answer": SECRETS["values"]},
        interrupts={"task": [{"value": SECRETS["interrupt"]}]},
        has_next_tasks=True,
    )
    await storage.runs.finish(
        created.run.run_id,
        claim.claimed.run.attempt,
        RunOutcome(RunEnd.ERROR, error={"message": SECRETS["run_error"]}, state=state),
    )
    cron_id = str(uuid.uuid4())
    await storage.crons.create(
        TENANT,
        "owner",
        NewCron(
            cron_id=cron_id,
            assistant_id=assistant.assistant_id,
            thread_id=None,
            schedule="0 * * * *",
            timezone=None,
            payload={"input": {"text": SECRETS["cron_payload"]}},
            metadata={"patient_ssn": SECRETS["cron_ssn"], "kind": "hourly"},
            end_time=None,
            next_run_date=after(utcnow(), 3600),
            enabled=True,
            on_run_completed="keep",
            user_id=None,
        ),
    )
    return Planted(thread_id, created.run.run_id, cron_id, assistant.assistant_id)


async def read_back(storage: Storage, planted: Planted) -> None:
    """What the services read is plaintext again."""
    thread = await storage.threads.get(TENANT, planted.thread_id)
    assert thread is not None
    assert thread.metadata["user_email"] == SECRETS["email"]
    assert thread.metadata["owner"] == {"phone": SECRETS["nested_phone"]}
    assert thread.values == {"answer": SECRETS["values"]}
    assert thread.interrupts == {"task": [{"value": SECRETS["interrupt"]}]}
    assert thread.config == {"configurable": {"hint": SECRETS["config"]}}
    assert thread.error == {"message": SECRETS["run_error"]}
    run = await storage.runs.get(TENANT, planted.run_id)
    assert run is not None and run.kwargs["input"]["text"] == SECRETS["kwargs"]
    assert run.error == {"message": SECRETS["run_error"]}
    assert run.metadata["session_token"] == SECRETS["run_token"]
    cron = await storage.crons.get(TENANT, planted.cron_id)
    assert cron is not None and cron.payload["input"]["text"] == SECRETS["cron_payload"]
    assert cron.metadata["patient_ssn"] == SECRETS["cron_ssn"]
    assistant = await storage.assistants.get(TENANT, planted.assistant_id)
    assert assistant is not None
    assert assistant.metadata["db_password"] == SECRETS["assistant_password"]
    versions = await storage.assistants.versions(TENANT, planted.assistant_id, None, Page())
    assert {v.metadata["db_password"] for v in versions} == {SECRETS["assistant_password"]}


def api_kids(site: Site) -> Counter[str]:
    """Which key sealed each envelope in the API tables' columns."""
    cipher = FieldCipher()
    kids: Counter[str] = Counter()
    for table, (_, columns) in API_COLUMNS.items():
        quoted = ", ".join(f'"{c}"' for c in columns)
        for row in site.query(f"SELECT {quoted} FROM {table}"):
            for value in row:
                parsed = orjson.loads(value) if isinstance(value, str) else value
                kids.update(cipher.kids(parsed))
    return kids


# E1 ------------------------------------------------------------------------------------


async def test_api_rows_leave_no_canary_in_the_database(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    await read_back(storage, planted)
    await site.close(storage)
    assert leaked(site.raw_bytes()) == []
    assert api_kids(site)["k1"] >= 12


async def test_api_row_canaries_are_visible_without_encryption(site: Site) -> None:
    """The control: the same rows without keys hold every canary (the scan works)."""
    storage = await site.open()
    await plant(storage)
    await site.close(storage)
    assert sorted(leaked(site.raw_bytes())) == sorted(SECRETS)


async def test_searches_still_work_on_encrypted_rows(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    ids = []
    for number in range(7):
        thread_id = f"thread-{number}"
        ids.append(thread_id)
        await storage.threads.create(
            TENANT,
            "owner",
            thread_id,
            {"team": "blue" if number % 2 else "red", "user_email": f"u{number}@example.com"},
            None,
            IfExists.RAISE,
        )
        state = ThreadState({"topic": "cats" if number % 3 == 0 else "dogs"}, {}, False)
        await storage.threads.record_state(TENANT, thread_id, state)

    async def search(**query: Any) -> tuple[list[str], bool]:
        found, more = await storage.threads.search(
            TENANT, ThreadQuery(sort_by="thread_id", sort_order=SortOrder.ASC, **query)
        )
        return [t.thread_id for t in found], more

    # Values are sealed: matched after decryption, with limit/offset applied afterwards.
    assert await search(values={"topic": "cats"}) == (["thread-0", "thread-3", "thread-6"], False)
    assert await search(values={"topic": "cats"}, page=Page(limit=1, offset=1)) == (
        ["thread-3"],
        True,
    )
    assert await search(values={"topic": "cats"}, page=Page(limit=2, offset=1)) == (
        ["thread-3", "thread-6"],
        False,
    )
    assert await storage.threads.count(TENANT, ThreadQuery(values={"topic": "dogs"})) == 4
    # Non-sensitive metadata stays in clear and searchable by the database.
    assert (await search(metadata={"team": "blue"}))[0] == ["thread-1", "thread-3", "thread-5"]
    # A sealed key is matched after decryption too, together with clear keys.
    assert await search(metadata={"user_email": "u3@example.com", "team": "blue"}) == (
        ["thread-3"],
        False,
    )
    assert await search(metadata={"user_email": "u3@example.com", "team": "red"}) == ([], False)
    await site.close(storage)
    assert b"u3@example.com" not in site.raw_bytes()


async def test_a_copied_thread_is_resealed_for_its_new_id(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    copy = await storage.threads.copy(TENANT, "owner", planted.thread_id, "thread-copy")
    assert copy.values == {"answer": SECRETS["values"]}
    assert copy.metadata["user_email"] == SECRETS["email"]
    fetched = await storage.threads.get(TENANT, "thread-copy")
    assert fetched is not None and fetched.config == {"configurable": {"hint": SECRETS["config"]}}


# E4 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "column", "source", "target"),
    [
        ("runs", "run_id", "kwargs", "run_id", "other_run"),
        ("threads", "thread_id", "values", "thread_id", "other_thread"),
    ],
)
async def test_a_sealed_field_moved_to_another_row_fails(
    site: Site, table: str, key: str, column: str, source: str, target: str
) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    other = await plant(storage)
    ids = {
        "run_id": planted.run_id,
        "other_run": other.run_id,
        "thread_id": planted.thread_id,
        "other_thread": other.thread_id,
    }
    ((sealed,),) = site.query(f'SELECT "{column}" FROM {table} WHERE {key} = ?', (ids[source],))
    value = sealed if isinstance(sealed, str) else orjson.dumps(sealed).decode()
    cast = "::jsonb" if site.kind == "postgres" else ""
    site.execute(f'UPDATE {table} SET "{column}" = ?{cast} WHERE {key} = ?', (value, ids[target]))
    with pytest.raises(DecryptionError, match="moved from another row"):
        if table == "runs":
            await storage.runs.get(TENANT, ids[target])
        else:
            await storage.threads.get(TENANT, ids[target])


async def test_a_sealed_metadata_value_moved_to_another_key_fails(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    (row,) = site.query("SELECT metadata FROM threads WHERE thread_id = ?", (planted.thread_id,))
    metadata = row[0] if isinstance(row[0], dict) else orjson.loads(row[0])
    assert sealed_envelope(metadata["user_email"]) is not None
    assert metadata["team"] == "blue"  # clear: searchable
    metadata["billing_email"] = metadata["user_email"]  # same row, another key
    cast = "::jsonb" if site.kind == "postgres" else ""
    site.execute(
        f"UPDATE threads SET metadata = ?{cast} WHERE thread_id = ?",
        (orjson.dumps(metadata).decode(), planted.thread_id),
    )
    with pytest.raises(DecryptionError, match="moved from another row"):
        await storage.threads.get(TENANT, planted.thread_id)


async def test_a_row_moved_to_another_tenant_fails(site: Site) -> None:
    storage = await site.open(encryption(KEY_1))
    planted = await plant(storage)
    site.execute("UPDATE runs SET tenant_id = 'tenant-b' WHERE run_id = ?", (planted.run_id,))
    with pytest.raises(DecryptionError):
        await storage.runs.get("tenant-b", planted.run_id)


async def test_strict_mode_refuses_plaintext_api_rows(site: Site) -> None:
    plain = await site.open()
    planted = await plant(plain)
    await site.close(plain)
    strict = await site.open(encryption(KEY_1, strict=True))
    with pytest.raises(PlaintextRefusedError):
        await strict.runs.get(TENANT, planted.run_id)


# E3 ------------------------------------------------------------------------------------


async def test_rotation_leaves_no_api_row_under_the_old_key(site: Site) -> None:
    old = await site.open(encryption(KEY_1))
    planted = await plant(old)
    await site.close(old)
    plain = await site.open()  # a row from before encryption was enabled is sealed too
    legacy = await plain.threads.create(
        TENANT, "owner", "legacy", {"user_email": "legacy@example.com"}, None, IfExists.RAISE
    )
    await site.close(plain)
    assert api_kids(site)["k1"] >= 12

    rotating = await site.open(encryption(KEY_2, KEY_1))
    progress = await rotate_data(
        rotating.checkpointer, _store(rotating), batch_size=1, api_rows=rotating
    )
    assert progress.api_rows >= 6
    again = await rotate_data(
        rotating.checkpointer, _store(rotating), batch_size=1, api_rows=rotating
    )
    assert again.api_rows == 0  # idempotent: nothing left under the old key
    await site.close(rotating)
    kids = api_kids(site)
    assert kids["k1"] == 0 and kids["k2"] >= 13, kids

    only_new = await site.open(encryption(KEY_2))
    await read_back(only_new, planted)
    fetched = await only_new.threads.get(TENANT, legacy.thread_id)
    assert fetched is not None and fetched.metadata["user_email"] == "legacy@example.com"


def _store(storage: Storage) -> Any:
    from garrison.storage.sqlite import SqliteStorage

    return storage.sqlite_store if isinstance(storage, SqliteStorage) else storage.postgres_store


# Unit: the codec ------------------------------------------------------------------------


def test_metadata_sealing_walks_nested_dicts_and_lists() -> None:
    from garrison.security.envelope import EnvelopeCipher

    cipher = FieldCipher(EnvelopeCipher(Keyring([KEY_1])), ("email",))
    context = ("api-row", "t", "threads", "id", "metadata")
    metadata = {"team": "x", "contacts": [{"Work_Email": "a@b"}], "user": {"email": "c@d"}}
    sealed = cipher.seal_metadata(metadata, context)
    assert sealed["team"] == "x"
    assert sealed_envelope(sealed["contacts"][0]["Work_Email"]) is not None
    assert sealed_envelope(sealed["user"]["email"]) is not None
    assert cipher.open_metadata(sealed, context) == metadata
    with pytest.raises(DecryptionError):
        FieldCipher(None, ("email",)).open_metadata(sealed, context)  # keys removed: no garbage
