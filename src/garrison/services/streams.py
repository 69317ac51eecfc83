"""Reading event logs: what a subscriber is shown."""

from collections.abc import AsyncIterator

from garrison.broker.ports import StreamRecord


async def without_stale_attempts(
    records: AsyncIterator[StreamRecord | None],
) -> AsyncIterator[StreamRecord | None]:
    """Drop events a run's older attempt published after a newer attempt began.

    A worker that lost its lease keeps running until its next heartbeat tells it so, and
    may publish meanwhile; once the new owner's events appear, those are noise. Idle ticks
    (None), thread events and end records pass through.
    """
    newest: dict[str, int] = {}
    async for record in records:
        if record is not None and record.attempt:
            seen = newest.get(record.run_id, 0)
            if record.attempt < seen:
                continue
            newest[record.run_id] = record.attempt
        yield record
