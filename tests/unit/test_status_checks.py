"""Idle streams' status checks are coalesced into one storage query per window."""

import asyncio
from collections.abc import Sequence

import pytest

from garrison.domain.runs import RunStatus
from garrison.services.status_checks import RunStatusChecks


class Lookups:
    def __init__(self, known: dict[str, RunStatus], fail: bool = False) -> None:
        self.known = known
        self.fail = fail
        self.calls: list[list[str]] = []

    async def __call__(self, run_ids: Sequence[str]) -> dict[str, RunStatus]:
        self.calls.append(list(run_ids))
        await asyncio.sleep(0)
        if self.fail:
            raise ConnectionError("database unavailable")
        return {r: self.known[r] for r in run_ids if r in self.known}


async def test_concurrent_checks_share_one_query() -> None:
    lookups = Lookups(
        {f"r{i}": RunStatus.PENDING for i in range(500)} | {"done": RunStatus.SUCCESS}
    )
    checks = RunStatusChecks(lookups, window_seconds=0.01)
    ids = [f"r{i}" for i in range(500)] + ["done", "gone", "r1"]
    answers = await asyncio.gather(*(checks.status(run_id) for run_id in ids))
    assert answers[:500] == [RunStatus.PENDING] * 500
    assert answers[500:] == [RunStatus.SUCCESS, None, RunStatus.PENDING]
    assert len(lookups.calls) == 1 and sorted(lookups.calls[0]) == sorted(set(ids))


async def test_checks_in_later_windows_get_fresh_answers() -> None:
    lookups = Lookups({"r": RunStatus.RUNNING})
    checks = RunStatusChecks(lookups, window_seconds=0.001)
    assert await checks.status("r") is RunStatus.RUNNING
    lookups.known["r"] = RunStatus.SUCCESS
    assert await checks.status("r") is RunStatus.SUCCESS
    assert len(lookups.calls) == 2


async def test_a_failed_query_fails_every_check_of_its_batch() -> None:
    checks = RunStatusChecks(Lookups({}, fail=True), window_seconds=0.001)
    results = await asyncio.gather(checks.status("a"), checks.status("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_cancelled_check_does_not_disturb_the_others() -> None:
    lookups = Lookups({"a": RunStatus.PENDING, "b": RunStatus.PENDING})
    checks = RunStatusChecks(lookups, window_seconds=0.01)
    abandoned = asyncio.ensure_future(checks.status("a"))
    kept = asyncio.ensure_future(checks.status("b"))
    await asyncio.sleep(0)
    abandoned.cancel()
    assert await kept is RunStatus.PENDING
    with pytest.raises(asyncio.CancelledError):
        await abandoned
