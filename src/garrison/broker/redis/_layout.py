"""Key names, stream entry fields and signal messages: the Redis side of the broker's data."""

from garrison.broker.ids import parse_event_id
from garrison.broker.ports import FROM_START, StreamRecord
from garrison.domain.runs import CancelAction

# Stream entry fields, one byte each: a run can publish thousands of entries.
EVENT = b"e"
DATA = b"d"
RUN = b"r"  # thread logs only: which run an entry belongs to ("" for thread events)
END = b"x"  # present only on a run log's end record
ATTEMPT = b"a"  # the run attempt that published an event

StreamId = tuple[int, int]
Entry = tuple[bytes, dict[bytes, bytes]]

_U64_MAX = 2**64 - 1  # both halves of a Redis stream id are unsigned 64-bit


class Keys:
    """Every key and channel of one deployment, under its prefix."""

    __slots__ = ("cancel_channel", "prefix", "work_channel")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.work_channel = f"{prefix}:signal:work"
        self.cancel_channel = f"{prefix}:signal:cancel"

    def run_log(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:log"

    def run_ended(self, run_id: str) -> str:
        """The channel a run's final output is published on when its log ends."""
        return f"{self.prefix}:run:{run_id}:ended"

    def changes(self, log: str) -> str:
        """The channel that announces appends to `log` (a key of this deployment)."""
        return f"{log}:changes"

    def thread_log(self, thread_id: str) -> str:
        return f"{self.prefix}:thread:{thread_id}:log"


def cursor_after(since: str | None) -> str | None:
    """The XREAD id a subscription starts after; None for "live" (resolved against the
    log's tail later). Malformed ids raise InvalidArgumentError here, before any I/O."""
    if since is None:
        return None
    if since == FROM_START:
        return "0-0"
    ms, seq = parse_event_id(since)
    # Larger ids than Redis can hold mean "after everything", as they do in memory.
    return f"{min(ms, _U64_MAX)}-{min(seq, _U64_MAX)}"


def stream_id(value: bytes | str) -> StreamId:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def run_record(run_id: str, entry: Entry) -> StreamRecord:
    entry_id, fields = entry
    return StreamRecord(
        entry_id.decode(),
        run_id,
        fields[EVENT].decode(),
        fields[DATA],
        END in fields,
        int(fields.get(ATTEMPT, 0)),
    )


def thread_record(entry: Entry) -> StreamRecord:
    entry_id, fields = entry
    return StreamRecord(
        entry_id.decode(),
        fields[RUN].decode(),
        fields[EVENT].decode(),
        fields[DATA],
        attempt=int(fields.get(ATTEMPT, 0)),
    )


def is_end(entry: Entry) -> bool:
    return END in entry[1]


def cancel_message(origin: str, run_id: str, action: CancelAction) -> str:
    return f"{origin} {run_id} {action.value}"


def parse_cancel(payload: bytes) -> tuple[str, str, CancelAction] | None:
    """(origin, run_id, action), or None for a message this version does not understand."""
    parts = payload.decode(errors="replace").split(" ")
    if len(parts) != 3:
        return None
    origin, run_id, action = parts
    try:
        return origin, run_id, CancelAction(action)
    except ValueError:
        return None
