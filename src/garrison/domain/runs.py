"""Run statuses and the pure decisions around them: multitask rules and cancellation."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from garrison.domain.errors import ConflictError


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"


ACTIVE_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING})


class MultitaskStrategy(StrEnum):
    REJECT = "reject"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
    ENQUEUE = "enqueue"


class CancelAction(StrEnum):
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class CancelEffect(StrEnum):
    """What cancelling one run does to it."""

    MARK_INTERRUPTED = "mark_interrupted"  # pending run: becomes `interrupted` now
    DELETE = "delete"  # pending run rolled back: the row disappears now
    SIGNAL = "signal"  # running run: its worker is told to stop


@dataclass(frozen=True, slots=True)
class ActiveRun:
    run_id: str
    status: RunStatus


@dataclass(frozen=True, slots=True)
class CancelStep:
    run_id: str
    action: CancelAction
    effect: CancelEffect


REJECT_MESSAGE = (
    "Thread is already running a task. Wait for it to finish or choose a different "
    "multitask strategy."
)


def cancel_step(run: ActiveRun, action: CancelAction) -> CancelStep:
    """How to cancel one active run with `action`."""
    if run.status is RunStatus.RUNNING:
        return CancelStep(run.run_id, action, CancelEffect.SIGNAL)
    if action is CancelAction.ROLLBACK:
        return CancelStep(run.run_id, action, CancelEffect.DELETE)
    return CancelStep(run.run_id, action, CancelEffect.MARK_INTERRUPTED)


def plan_multitask(strategy: MultitaskStrategy, active: Sequence[ActiveRun]) -> list[CancelStep]:
    """What a new run on a thread with `active` runs does to them.

    Raises ConflictError for `reject` when the thread is busy; `enqueue` leaves the
    active runs alone (the new run waits its turn).
    """
    if not active or strategy is MultitaskStrategy.ENQUEUE:
        return []
    if strategy is MultitaskStrategy.REJECT:
        raise ConflictError(REJECT_MESSAGE)
    action = (
        CancelAction.ROLLBACK if strategy is MultitaskStrategy.ROLLBACK else CancelAction.INTERRUPT
    )
    return [cancel_step(run, action) for run in active]


def parse_cancel_action(value: str | None) -> CancelAction:
    """LangGraph Server treats any unknown action as `interrupt`; so do we."""
    return CancelAction.ROLLBACK if value == CancelAction.ROLLBACK else CancelAction.INTERRUPT


def max_attempts_error(max_attempts: int) -> dict[str, str]:
    """The error a run ends with when its worker died on every allowed attempt."""
    return {
        "error": "MaxAttemptsExceeded",
        "message": f"Max attempts exceeded: the run lost its worker on each of {max_attempts}"
        " attempts",
    }
