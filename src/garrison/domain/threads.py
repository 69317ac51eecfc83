"""Thread statuses and how they are derived from runs and checkpoints."""

from enum import StrEnum


class ThreadStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


def derive_thread_status(
    *, has_active_runs: bool, last_run_failed: bool, has_next_tasks: bool
) -> ThreadStatus:
    """The thread status after a run ends or its state is updated.

    Order matters: queued work makes the thread busy whatever the last run did; a failed
    run wins over a pending interrupt because its checkpoint may still name next tasks.
    """
    if has_active_runs:
        return ThreadStatus.BUSY
    if last_run_failed:
        return ThreadStatus.ERROR
    if has_next_tasks:
        return ThreadStatus.INTERRUPTED
    return ThreadStatus.IDLE
