"""Audit records and their hash chain (pure: no I/O).

Every record stores the hash of the one before it, and its own hash covers its content, its
position and that previous hash: `hash = sha256(canonical(record) + prev_hash)`. Editing a
record breaks its own hash; deleting or reordering records breaks the link of the next one;
truncating the tail leaves the chain shorter than its head (the adapters keep the head, last
sequence number and hash, next to the records and update both in one transaction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = [
    "COLUMNS",
    "GENESIS_HASH",
    "AuditEvent",
    "AuditRecord",
    "ChainBreak",
    "ChainHead",
    "ChainVerifier",
    "Outcome",
    "from_row",
    "seal",
    "to_row",
]

Outcome = Literal["success", "failure", "denied", "error"]

# The `prev_hash` of the first record.
GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, as the request middleware saw it. Never a body, never a secret."""

    time: datetime  # UTC
    request_id: str
    actor: str | None  # the principal's identity
    credential_id: str | None  # the API key's public id (or None for JWT/anonymous)
    tenant_id: str | None
    action: str  # `threads.create`, or `unrouted` for paths no route matched
    resource: str  # the route template: `/threads/{thread_id}/runs`
    object_ids: Mapping[str, str] = field(default_factory=dict)  # the template's path params
    outcome: Outcome = "success"
    status: int = 0
    client_ip: str | None = None
    summary: str = ""  # redacted, one line

    def canonical(self) -> bytes:
        """The bytes the hash covers: sorted-key JSON, time in UTC microseconds."""
        content: dict[str, Any] = asdict(self)
        content["time"] = self.time.astimezone(UTC).isoformat(timespec="microseconds")
        content["object_ids"] = dict(self.object_ids)
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int  # 1, 2, 3... without gaps
    event: AuditEvent
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The export form (`garrison audit export --format jsonl`)."""
        event = orjson.loads(self.event.canonical())
        return {"seq": self.seq, **event, "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last record's sequence number and hash (seq 0 and GENESIS_HASH when empty)."""

    seq: int
    hash: str


# Column names of a stored record, in the adapters' table order.
COLUMNS = (
    "seq", "time", "request_id", "actor", "credential_id", "tenant_id", "action", "resource",
    "object_ids", "outcome", "status", "client_ip", "summary", "prev_hash", "hash",
)  # fmt: skip


def to_row(record: AuditRecord) -> dict[str, Any]:
    """A record as column values; `object_ids` as JSON text, `time` as a datetime."""
    event = record.event
    return {
        **{name: getattr(event, name) for name in COLUMNS if hasattr(event, name)},
        "seq": record.seq,
        "object_ids": orjson.dumps(dict(event.object_ids)).decode(),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def from_row(row: Mapping[str, Any]) -> AuditRecord:
    """A stored record; `time` may be a datetime or ISO text, `object_ids` JSON text."""
    time = row["time"]
    if isinstance(time, str):
        time = datetime.fromisoformat(time)
    object_ids = row["object_ids"]
    event = AuditEvent(
        time=time.astimezone(UTC),
        request_id=row["request_id"],
        actor=row["actor"],
        credential_id=row["credential_id"],
        tenant_id=row["tenant_id"],
        action=row["action"],
        resource=row["resource"],
        object_ids=orjson.loads(object_ids) if isinstance(object_ids, str) else object_ids,
        outcome=row["outcome"],
        status=row["status"],
        client_ip=row["client_ip"],
        summary=row["summary"],
    )
    return AuditRecord(row["seq"], event, row["prev_hash"], row["hash"])


def record_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    digest = hashlib.sha256()
    digest.update(b"%d\n" % seq)
    digest.update(event.canonical())
    digest.update(prev_hash.encode("ascii"))
    return digest.hexdigest()


def seal(event: AuditEvent, head: ChainHead) -> AuditRecord:
    """The record that appends `event` after `head`."""
    seq = head.seq + 1
    return AuditRecord(seq, event, head.hash, record_hash(seq, event, head.hash))


def seal_all(events: Iterable[AuditEvent], head: ChainHead) -> list[AuditRecord]:
    """The records that append `events`, in order, after `head` (a group commit)."""
    records = []
    for event in events:
        record = seal(event, head)
        head = ChainHead(record.seq, record.hash)
        records.append(record)
    return records


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int  # the first record that does not verify (or the head's, for a cut tail)
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


class ChainVerifier:
    """Walks records in sequence order, page by page, and reports the first break."""

    def __init__(self) -> None:
        self.expected = ChainHead(0, GENESIS_HASH)
        self.checked = 0

    def feed(self, records: Iterable[AuditRecord]) -> ChainBreak | None:
        for record in records:
            problem = self._check(record)
            if problem is not None:
                return problem
            self.expected = ChainHead(record.seq, record.hash)
            self.checked += 1
        return None

    def _check(self, record: AuditRecord) -> ChainBreak | None:
        want = self.expected.seq + 1
        if record.seq != want:
            return ChainBreak(want, f"missing (deleted?); the next record is {record.seq}")
        if record.prev_hash != self.expected.hash:
            return ChainBreak(record.seq, "does not link to the record before it")
        if record_hash(record.seq, record.event, record.prev_hash) != record.hash:
            return ChainBreak(record.seq, "content does not match its hash (edited)")
        return None

    def finish(self, head: ChainHead) -> ChainBreak | None:
        """Compare the end of the walk with the stored head: a cut tail ends early."""
        if head.seq > self.expected.seq:
            return ChainBreak(self.expected.seq + 1, f"missing; the head is at {head.seq}")
        if head.seq < self.expected.seq or head.hash != self.expected.hash:
            return ChainBreak(head.seq, "the chain head does not match the last record")
        return None
