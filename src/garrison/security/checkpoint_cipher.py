"""Encrypts everything a checkpointer stores about a thread's state, keeping in clear only
what the stores query.

Wrapping the serializer is not enough (fact 2 in the reliability targets): the stock
PostgreSQL saver keeps `str`/`int`/`bool`/`None` channel values inline in its JSONB, and
both savers write checkpoint metadata (which carries the run's metadata) as plain JSON.
So this works on the checkpoint itself, before the stock saver sees it:

- every channel value becomes an envelope (`bytes`, which both savers hand to the
  serializer), bound to (thread, namespace, channel, channel version);
- every pending write becomes an envelope bound to (thread, namespace, checkpoint, task,
  channel);
- metadata keeps `CLEAR_METADATA_KEYS` in clear (the run id deletes a run's checkpoints,
  `source`/`step` filter history); the rest goes into one envelope under `SEALED_KEY`,
  bound to (thread, namespace, checkpoint).
Channel names, versions and checkpoint ids stay in clear: they are the graph's shape,
not its data.

Rows without an envelope (written before encryption was turned on) are read as they are,
unless `strict`, where they raise PlaintextRefusedError.

Re-encryption goes through one per-envelope step (`_rewrap`), used by the rotation job and
thread copies (`rewrap_*`, every row of a thread) and by lazy re-encryption on read
(`stale_parts` finds a checkpoint's envelopes under an older key from their headers alone,
`reseal_*` re-seals each one; see `garrison.security.lazy_reseal`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from garrison.security.envelope import (
    DecryptionError,
    EnvelopeCipher,
    is_envelope,
    kid_of,
    kid_of_base64,
    refuse_plaintext,
)

SEALED_KEY = "__garrison_sealed__"
CLEAR_METADATA_KEYS = frozenset(
    {"source", "step", "parents", "run_id", "thread_id", "assistant_id", "graph_id"}
)
_TYPE_SEPARATOR = b"\x00"


def value_context(thread_id: str, ns: str, channel: str, version: object) -> tuple[str, ...]:
    return ("checkpoint-value", thread_id, ns, channel, str(version))


def write_context(
    thread_id: str, ns: str, checkpoint_id: str, task_id: str, channel: str
) -> tuple[str, ...]:
    return ("checkpoint-write", thread_id, ns, checkpoint_id, task_id, channel)


def metadata_context(thread_id: str, ns: str, checkpoint_id: str) -> tuple[str, ...]:
    return ("checkpoint-metadata", thread_id, ns, checkpoint_id)


@dataclass(frozen=True, slots=True)
class StaleCheckpoint:
    """The envelopes of one checkpoint, as read, that an older key sealed: what lazy
    re-encryption replaces, each only where the database still holds it (the
    compare-and-set). Its address is the checkpoint's (thread, namespace, id)."""

    thread_id: str
    ns: str
    checkpoint_id: str
    values: dict[str, tuple[str, bytes]]  # channel -> (its version, envelope)
    writes: list[tuple[str, str, bytes]]  # pending writes: (task id, channel, envelope)
    metadata: str | None  # the sealed metadata (base64), when an older key sealed it


class CheckpointCipher:
    def __init__(self, envelopes: EnvelopeCipher, serde: SerializerProtocol) -> None:
        self.envelopes = envelopes
        self._serde = serde

    # Values ----------------------------------------------------------------------------
    def seal_value(self, value: Any, context: Sequence[str]) -> bytes:
        type_, data = self._serde.dumps_typed(value)
        return self.envelopes.seal(type_.encode("utf-8") + _TYPE_SEPARATOR + data, context)

    def open_value(self, stored: Any, context: Sequence[str]) -> Any:
        if not (isinstance(stored, bytes) and is_envelope(stored)):
            if self.envelopes.strict:
                raise refuse_plaintext(context[0])
            return stored  # written before encryption was enabled
        type_, _, data = self.envelopes.open(stored, context).partition(_TYPE_SEPARATOR)
        return self._serde.loads_typed((type_.decode("utf-8"), data))

    # Metadata --------------------------------------------------------------------------
    def seal_metadata(self, metadata: Mapping[str, Any], context: Sequence[str]) -> dict[str, Any]:
        clear = {k: v for k, v in metadata.items() if k in CLEAR_METADATA_KEYS}
        secret = {k: v for k, v in metadata.items() if k not in CLEAR_METADATA_KEYS}
        if secret:
            sealed = self.seal_value(secret, context)
            clear[SEALED_KEY] = base64.b64encode(sealed).decode("ascii")
        return clear

    def open_metadata(self, stored: Mapping[str, Any], context: Sequence[str]) -> dict[str, Any]:
        metadata = {k: v for k, v in stored.items() if k != SEALED_KEY}
        sealed = stored.get(SEALED_KEY)
        if sealed is not None:
            metadata.update(self.open_value(base64.b64decode(sealed), context))
        elif self.envelopes.strict and any(k not in CLEAR_METADATA_KEYS for k in metadata):
            raise refuse_plaintext("checkpoint-metadata")
        return metadata

    # Whole checkpoints -----------------------------------------------------------------
    def seal_put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[RunnableConfig, Checkpoint, CheckpointMetadata]:
        """What to hand the stock saver's `put`. The returned config carries only the
        checkpoint's address: the savers copy the rest of it into metadata, in clear."""
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        full = get_serializable_checkpoint_metadata(config, metadata)
        versions = checkpoint["channel_versions"]
        sealed = checkpoint.copy()
        sealed["channel_values"] = {
            channel: self.seal_value(
                value, value_context(thread_id, ns, channel, versions.get(channel))
            )
            for channel, value in checkpoint["channel_values"].items()
        }
        address = {"thread_id": thread_id, "checkpoint_ns": ns}
        if configurable.get("checkpoint_id") is not None:
            address["checkpoint_id"] = configurable["checkpoint_id"]
        sealed_metadata = self.seal_metadata(
            full, metadata_context(thread_id, ns, checkpoint["id"])
        )
        return (
            {"configurable": address},
            sealed,
            cast(CheckpointMetadata, sealed_metadata),
        )

    def seal_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str
    ) -> list[tuple[str, Any]]:
        thread_id, ns, checkpoint_id = _address(config)
        return [
            (
                channel,
                self.seal_value(
                    value, write_context(thread_id, ns, checkpoint_id, task_id, channel)
                ),
            )
            for channel, value in writes
        ]

    def open_tuple(self, stored: CheckpointTuple) -> CheckpointTuple:
        thread_id, ns, checkpoint_id = _address(stored.config)
        checkpoint = stored.checkpoint.copy()
        versions = checkpoint["channel_versions"]
        checkpoint["channel_values"] = {
            channel: self.open_value(
                value, value_context(thread_id, ns, channel, versions.get(channel))
            )
            for channel, value in checkpoint["channel_values"].items()
        }
        metadata = self.open_metadata(
            cast(Mapping[str, Any], stored.metadata),
            metadata_context(thread_id, ns, checkpoint_id),
        )
        writes = [
            (
                task_id,
                channel,
                self.open_value(
                    value, write_context(thread_id, ns, checkpoint_id, task_id, channel)
                ),
            )
            for task_id, channel, value in stored.pending_writes or []
        ]
        return stored._replace(
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, metadata),
            pending_writes=writes if stored.pending_writes is not None else None,
        )

    # Lazy re-encryption on read ------------------------------------------------------
    def stale_parts(self, stored: CheckpointTuple) -> StaleCheckpoint | None:
        """What of a checkpoint tuple as the stock saver read it (before `open_tuple`)
        an older key sealed, from envelope headers alone: a current checkpoint costs no
        decryption and no query. None when nothing is stale."""
        stale = self.envelopes.is_stale_kid
        thread_id, ns, checkpoint_id = _address(stored.config)
        versions = stored.checkpoint["channel_versions"]
        values = {
            channel: (str(versions.get(channel)), value)
            for channel, value in stored.checkpoint["channel_values"].items()
            if stale(_kid(value))
        }
        writes = [
            (task_id, channel, value)
            for task_id, channel, value in stored.pending_writes or []
            if stale(_kid(value))
        ]
        sealed = cast(Mapping[str, Any], stored.metadata).get(SEALED_KEY)
        metadata = sealed if isinstance(sealed, str) and stale(kid_of_base64(sealed)) else None
        if not values and not writes and metadata is None:
            return None
        return StaleCheckpoint(thread_id, ns, checkpoint_id, values, writes, metadata)

    def reseal_value(self, stale: StaleCheckpoint, channel: str) -> bytes:
        """The channel value `stale` read, under the active key."""
        version, envelope = stale.values[channel]
        context = value_context(stale.thread_id, stale.ns, channel, version)
        return self._resealed(envelope, context)

    def reseal_write(
        self, stale: StaleCheckpoint, task_id: str, channel: str, envelope: bytes
    ) -> bytes:
        """One of the pending writes `stale` read, under the active key."""
        context = write_context(stale.thread_id, stale.ns, stale.checkpoint_id, task_id, channel)
        return self._resealed(envelope, context)

    def reseal_metadata(self, stale: StaleCheckpoint) -> str:
        """The sealed metadata `stale` read (base64), under the active key."""
        if stale.metadata is None:
            raise ValueError("the checkpoint's metadata is not stale")
        context = metadata_context(stale.thread_id, stale.ns, stale.checkpoint_id)
        envelope = self._resealed(base64.b64decode(stale.metadata), context)
        return base64.b64encode(envelope).decode("ascii")

    def patch_stale(
        self, stale: StaleCheckpoint, values: Mapping[str, Any], metadata: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A checkpoint row's channel values and metadata as the database holds them now,
        with each stale envelope it still holds (the same bytes as read) re-sealed; None
        when it holds none of them any more (a writer replaced them since the read)."""
        patched_values, patched_metadata = dict(values), dict(metadata)
        changed = False
        for channel, (_version, envelope) in stale.values.items():
            if patched_values.get(channel) == envelope:
                patched_values[channel] = self.reseal_value(stale, channel)
                changed = True
        if stale.metadata is not None and patched_metadata.get(SEALED_KEY) == stale.metadata:
            patched_metadata[SEALED_KEY] = self.reseal_metadata(stale)
            changed = True
        return (patched_values, patched_metadata) if changed else None

    def _resealed(self, envelope: bytes, context: Sequence[str]) -> bytes:
        new = self._rewrap(envelope, context, context)
        return envelope if new is None else new

    # Re-encryption (rotation, thread copies) -----------------------------------------
    def _rewrap(
        self, stored: Any, context: Sequence[str], new_context: Sequence[str]
    ) -> bytes | None:
        """`stored` under the active key and `new_context`; None when it already is.
        A plaintext value (written before encryption) is sealed."""
        if isinstance(stored, bytes) and is_envelope(stored):
            if context == new_context and self.envelopes.is_current(stored):
                return None
            return self.envelopes.reseal(stored, context, new_context)
        return self.seal_value(stored, new_context)

    def rewrap_channel_values(
        self,
        values: Mapping[str, Any],
        versions: Mapping[str, Any],
        address: tuple[str, str],
        thread_id: str,
    ) -> dict[str, bytes] | None:
        """Channel values stored under `address` (thread, namespace), sealed for
        `thread_id` under the active key; None when nothing changes."""
        stored_thread, ns = address
        changed = False
        out: dict[str, Any] = {}
        for channel, value in values.items():
            version = versions.get(channel)
            new = self._rewrap(
                value,
                value_context(stored_thread, ns, channel, version),
                value_context(thread_id, ns, channel, version),
            )
            changed |= new is not None
            out[channel] = value if new is None else new
        return out if changed else None

    def rewrap_metadata(
        self, stored: Mapping[str, Any], address: tuple[str, str, str], thread_id: str
    ) -> dict[str, Any] | None:
        stored_thread, ns, checkpoint_id = address
        old = metadata_context(stored_thread, ns, checkpoint_id)
        new = metadata_context(thread_id, ns, checkpoint_id)
        sealed = stored.get(SEALED_KEY)
        plain = {k: v for k, v in stored.items() if k not in CLEAR_METADATA_KEYS | {SEALED_KEY}}
        if sealed is None and not plain:
            return None
        if sealed is not None and not plain:
            envelope = self._rewrap(base64.b64decode(sealed), old, new)
            if envelope is None:
                return None
            return {**stored, SEALED_KEY: base64.b64encode(envelope).decode("ascii")}
        secret = self.open_value(base64.b64decode(sealed), old) if sealed is not None else {}
        merged = {k: v for k, v in stored.items() if k != SEALED_KEY}
        return self.seal_metadata({**merged, **secret}, new)

    def rewrap_write(
        self, stored: tuple[str, bytes], address: tuple[str, str, str, str, str], thread_id: str
    ) -> tuple[str, bytes] | None:
        """A pending write as the savers store it, (serializer type, data)."""
        stored_thread, ns, checkpoint_id, task_id, channel = address
        value = self._serde.loads_typed(stored)
        new = self._rewrap(
            value,
            write_context(stored_thread, ns, checkpoint_id, task_id, channel),
            write_context(thread_id, ns, checkpoint_id, task_id, channel),
        )
        return None if new is None else self._serde.dumps_typed(new)


def split_filter(
    filter: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A metadata filter as (what the database can match, what only the decrypted metadata
    can)."""
    if not filter:
        return (dict(filter) if filter is not None else None), {}
    clear = {k: v for k, v in filter.items() if k in CLEAR_METADATA_KEYS}
    return clear, {k: v for k, v in filter.items() if k not in CLEAR_METADATA_KEYS}


def matches(metadata: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(metadata.get(key) == value for key, value in filter.items())


def _kid(value: Any) -> str | None:
    """The kid in an envelope's header; None for anything else (a plaintext value)."""
    if not (isinstance(value, bytes) and is_envelope(value)):
        return None
    try:
        return kid_of(value)
    except DecryptionError:
        return None


def _address(config: RunnableConfig) -> tuple[str, str, str]:
    configurable = config["configurable"]
    return (
        str(configurable["thread_id"]),
        str(configurable.get("checkpoint_ns", "")),
        str(configurable["checkpoint_id"]),
    )


__all__ = [
    "CLEAR_METADATA_KEYS",
    "SEALED_KEY",
    "CheckpointCipher",
    "StaleCheckpoint",
    "matches",
    "metadata_context",
    "split_filter",
    "value_context",
    "write_context",
]
