"""The attempt a piece of work belongs to: the fencing token for writes made on its behalf.

The worker sets `current_attempt` before running a graph; storage adapters that can check
it (PostgreSQL's checkpointer) refuse writes from an attempt that no longer owns its run,
so a worker that lost its lease cannot overwrite what the new owner wrote.
"""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AttemptToken:
    run_id: str
    attempt: int


current_attempt: ContextVar[AttemptToken | None] = ContextVar("current_attempt", default=None)
