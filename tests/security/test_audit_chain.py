"""The hash chain itself (pure): sealing, canonical form, and what the verifier reports."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from garrison.security.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    ChainHead,
    ChainVerifier,
    from_row,
    seal,
    to_row,
)

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def chain(n: int) -> list[AuditRecord]:
    records, head = [], ChainHead(0, GENESIS_HASH)
    for i in range(n):
        event = AuditEvent(
            time=T0 + timedelta(seconds=i), request_id=f"r{i}", actor="alice",
            credential_id=None, tenant_id="t", action="threads.create", resource="/threads",
        )  # fmt: skip
        record = seal(event, head)
        records.append(record)
        head = ChainHead(record.seq, record.hash)
    return records


def test_a_sealed_chain_verifies_and_matches_its_head() -> None:
    records = chain(5)
    verifier = ChainVerifier()
    assert verifier.feed(records[:2]) is None and verifier.feed(records[2:]) is None
    assert verifier.finish(ChainHead(5, records[-1].hash)) is None
    assert verifier.checked == 5


def test_the_hash_ignores_the_time_zone_of_the_same_instant() -> None:
    [record] = chain(1)
    paris = record.event.time.astimezone(timezone(timedelta(hours=1)))
    assert replace(record.event, time=paris).canonical() == record.event.canonical()


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        (lambda rs: [rs[0], replace(rs[1], event=replace(rs[1].event, actor="eve")), *rs[2:]],
         2, "edited"),
        (lambda rs: [rs[0], *rs[2:]], 2, "missing"),
        (lambda rs: [rs[0], rs[2], rs[1], rs[3]], 2, "missing"),
        # A forged record re-hashed by someone without the later records' cooperation.
        (lambda rs: [rs[0], seal(replace(rs[1].event, status=500), ChainHead(1, rs[0].hash)),
                     *rs[2:]], 3, "does not link"),
    ],
)  # fmt: skip
def test_the_verifier_names_the_first_broken_record(tamper, seq: int, reason: str) -> None:  # type: ignore[no-untyped-def]
    problem = ChainVerifier().feed(tamper(chain(4)))
    assert problem is not None and problem.seq == seq and reason in problem.reason


def test_a_cut_tail_is_caught_by_the_head() -> None:
    records = chain(3)
    verifier = ChainVerifier()
    assert verifier.feed(records[:2]) is None
    problem = verifier.finish(ChainHead(3, records[2].hash))
    assert problem is not None and problem.seq == 3


def test_rows_round_trip_and_export_has_every_field() -> None:
    [record] = chain(1)
    row = to_row(record)
    row["time"] = row["time"].isoformat()  # as SQLite stores it
    assert from_row(row) == record
    exported = record.to_json()
    assert exported["seq"] == 1 and exported["hash"] == record.hash
    assert exported["time"] == "2026-11-22T06:00:00.000000+00:00" and exported["actor"] == "alice"
