"""Seals stream events kept in Redis for replay (SSE `Last-Event-ID`, `join`, `wait`).

Each entry's `data` (run output chunks, the final output, thread events) is one envelope,
bound to the log it was written to: ("run-log", run_id) for a run's log and its published
end, ("thread-log", thread_id, run_id) for the thread's log. An event copied into another
run's or thread's log fails to open. Event names, ids and run ids stay in clear: readers
route and resume by them.

Plaintext entries (written before encryption was enabled, or by an older version) are read
as they are unless strict mode is on. The in-process memory broker never leaves the
process and is not encrypted.
"""

from __future__ import annotations

from garrison.security.envelope import EnvelopeCipher, is_envelope, refuse_plaintext


def run_log_context(run_id: str) -> tuple[str, ...]:
    return ("run-log", run_id)


def thread_log_context(thread_id: str, run_id: str) -> tuple[str, ...]:
    return ("thread-log", thread_id, run_id)


class EventCipher:
    def __init__(self, envelopes: EnvelopeCipher) -> None:
        self.envelopes = envelopes

    def seal(self, data: bytes, context: tuple[str, ...]) -> bytes:
        return self.envelopes.seal(data, context)

    def open(self, stored: bytes, context: tuple[str, ...]) -> bytes:
        if not is_envelope(stored):
            if self.envelopes.strict:
                raise refuse_plaintext("stream event")
            return stored
        return self.envelopes.open(stored, context)


__all__ = ["EventCipher", "run_log_context", "thread_log_context"]
