"""Safe deserialization (target S9): a crafted checkpoint row naming a module that is not
on the allowlist is refused, and that module is never imported.

The probe module records its import in a marker file; the control test shows that
LangGraph's permissive default would import it from the very same row.
"""

import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import ormsgpack
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import EXT_CONSTRUCTOR_POS_ARGS, JsonPlusSerializer

from garrison.security.envelope import PlaintextRefusedError
from garrison.security.safe_serde import (
    EnvelopeOnlySerializer,
    parse_allowlist,
    safe_serializer,
)
from tests.contract.conftest import (  # noqa: F401 - fixtures
    postgres_databases,
    postgres_template,
    postgres_url,
)
from tests.security.test_encryption_at_rest import KEY_1, Site, Storage, encryption


class Probe:
    def __init__(self, directory: Path) -> None:
        self.module = f"garrison_s9_probe_{secrets.token_hex(4)}"
        self.marker = directory / f"{self.module}.imported"
        (directory / f"{self.module}.py").write_text(
            "import pathlib\n"
            f"pathlib.Path({str(self.marker)!r}).write_text('imported')\n"
            "class Boom:\n"
            "    def __init__(self, *args):\n"
            "        self.args = args\n"
            "def boom():\n"
            "    return 'exploded'\n"
        )

    @property
    def imported(self) -> bool:
        return self.marker.exists() or self.module in sys.modules

    def msgpack_row(self) -> bytes:
        """What the serializer writes for `Boom("payload")`: module, name, args."""
        inner = ormsgpack.packb([self.module, "Boom", ["payload"]])
        return ormsgpack.packb(ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, inner))

    def pickle_row(self) -> bytes:
        return f"c{self.module}\nboom\n(tR.".encode()


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Probe:
    directory = tmp_path / "probe"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    return Probe(directory)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    backend = Site(request.param, tmp_path, url)
    yield backend
    for storage in list(backend.opened):
        await backend.close(storage)


def test_the_crafted_row_is_dangerous_with_the_permissive_default(probe: Probe) -> None:
    """The control: LangGraph's default (allow all, with a warning) imports the module."""
    loaded = JsonPlusSerializer(allowed_msgpack_modules=True).loads_typed(
        ("msgpack", probe.msgpack_row())
    )
    assert probe.imported and type(loaded).__name__ == "Boom"


async def _checkpoint_with_write(storage: Storage, site: Site, type_: str, data: bytes) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": "victim", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    saved = await storage.checkpointer.aput(config, checkpoint, {"source": "input", "step": -1}, {})
    checkpoint_id = saved["configurable"]["checkpoint_id"]
    if site.kind == "sqlite":
        site.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,"
            " idx, channel, type, value) VALUES ('victim', '', ?, 'task', '', 0, 'state', ?, ?)",
            (checkpoint_id, type_, data),
        )
    else:
        site.execute(
            "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id,"
            " task_path, idx, channel, type, blob)"
            " VALUES ('victim', '', ?, 'task', '', 0, 'state', ?, ?)",
            (checkpoint_id, type_, data),
        )


async def test_a_crafted_row_is_loaded_as_data_and_nothing_is_imported(
    backend: Site, probe: Probe
) -> None:
    storage = await backend.open()
    await _checkpoint_with_write(storage, backend, "msgpack", probe.msgpack_row())
    loaded = await storage.checkpointer.aget_tuple({"configurable": {"thread_id": "victim"}})
    assert loaded is not None
    assert loaded.pending_writes == [("task", "state", ["payload"])]
    assert not probe.imported


async def test_a_pickled_row_is_refused(backend: Site, probe: Probe) -> None:
    storage = await backend.open()
    await _checkpoint_with_write(storage, backend, "pickle", probe.pickle_row())
    with pytest.raises(NotImplementedError, match="Unknown serialization type: pickle"):
        await storage.checkpointer.aget_tuple({"configurable": {"thread_id": "victim"}})
    assert not probe.imported


async def test_strict_encryption_refuses_the_crafted_row_outright(
    backend: Site, probe: Probe
) -> None:
    storage = await backend.open(encryption(KEY_1, strict=True))
    await _checkpoint_with_write(storage, backend, "msgpack", probe.msgpack_row())
    with pytest.raises(PlaintextRefusedError):
        await storage.checkpointer.aget_tuple({"configurable": {"thread_id": "victim"}})
    assert not probe.imported


def test_the_operator_allowlist_rebuilds_only_listed_types(probe: Probe) -> None:
    allowed = safe_serializer([f"{probe.module}:Boom"])
    assert type(allowed.loads_typed(("msgpack", probe.msgpack_row()))).__name__ == "Boom"
    assert parse_allowlist(["a.b.C", "a.b:C"]) == (("a.b", "C"), ("a.b", "C"))
    with pytest.raises(ValueError, match="not `module:Name`"):
        parse_allowlist(["C"])


@pytest.mark.parametrize("type_", ["msgpack", "pickle", "json"])
def test_strict_rows_are_refused_before_anything_is_rebuilt(probe: Probe, type_: str) -> None:
    """Strict mode's row serializer accepts containers and envelopes only: an object to
    rebuild outside an envelope is refused even if a permissive serializer would allow it."""
    payload = probe.pickle_row() if type_ == "pickle" else probe.msgpack_row()
    with pytest.raises(PlaintextRefusedError):
        EnvelopeOnlySerializer().loads_typed((type_, payload))
    assert not probe.imported
    plain = EnvelopeOnlySerializer()
    assert plain.loads_typed(plain.dumps_typed({"channel_values": {"a": b"\xe1"}})) == {
        "channel_values": {"a": b"\xe1"}
    }
