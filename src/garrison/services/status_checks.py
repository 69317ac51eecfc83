"""Coalesced run-status checks for idle streams and waits.

Every open stream of a waiting run re-checks storage once per heartbeat, in case its run
ended without the end reaching the broker (its worker died between the two, or Redis was
away). Ten thousand open streams would make that ten thousand queries per heartbeat; this
collects the checks made within a short window and answers them with one query.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from garrison.domain.runs import RunStatus

Lookup = Callable[[Sequence[str]], Awaitable[dict[str, RunStatus]]]

_WINDOW_SECONDS = 0.05  # a check waits at most this long for others to join its query
_MAX_BATCH = 5000


class RunStatusChecks:
    def __init__(self, lookup: Lookup, window_seconds: float = _WINDOW_SECONDS) -> None:
        self._lookup = lookup
        self._window = window_seconds
        self._pending: dict[str, list[asyncio.Future[RunStatus | None]]] = {}
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()

    async def status(self, run_id: str) -> RunStatus | None:
        """The run's current status; None once it no longer exists."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[RunStatus | None] = loop.create_future()
        self._pending.setdefault(run_id, []).append(answer)
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(self._window, self._flush)
        return await answer

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        run_ids = list(pending)
        for first in range(0, len(run_ids), _MAX_BATCH):
            chunk = {run_id: pending[run_id] for run_id in run_ids[first : first + _MAX_BATCH]}
            task = asyncio.ensure_future(self._answer(chunk))
            self._flushes.add(task)  # a reference, so the task is not collected mid-flight
            task.add_done_callback(self._flushes.discard)

    async def _answer(self, waiting: dict[str, list[asyncio.Future[RunStatus | None]]]) -> None:
        try:
            found = await self._lookup(list(waiting))
        except Exception as exc:  # every check of the batch learns of the failure
            for answers in waiting.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(exc)
            return
        for run_id, answers in waiting.items():
            for answer in answers:
                if not answer.done():  # its stream may have gone away meanwhile
                    answer.set_result(found.get(run_id))
