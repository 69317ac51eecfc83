"""Server-sent events, framed as LangGraph Server frames them."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import StreamingResponse

from garrison import serde
from garrison.broker.ports import StreamRecord
from garrison.observability.metrics import ACTIVE_SESSIONS

logger = logging.getLogger(__name__)

HEARTBEAT = b": heartbeat\r\n\r\n"


def frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    # Names and ids must not break the framing; data is single-line compact JSON already.
    name = event.replace("\r", "").replace("\n", "")
    parts = [b"event: ", name.encode(), b"\r\ndata: ", data, b"\r\n"]
    if event_id:
        parts += [b"id: ", event_id.encode(), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


async def frames(
    records: AsyncIterator[StreamRecord | None],
    *,
    keep: Callable[[str], bool] | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes for records; a heartbeat comment for each idle tick (None)."""
    async for record in records:
        if record is None:
            yield HEARTBEAT
        elif keep is None or keep(record.event):
            yield frame(record.event, record.data, record.id)


def sse_response(
    body: AsyncIterator[bytes],
    headers: Mapping[str, str] | None = None,
    on_close: Callable[[bool], Awaitable[None]] | None = None,
) -> StreamingResponse:
    """A streaming SSE response. `on_close(completed)` runs when the body ends or the
    client goes away (completed=False)."""

    async def guarded() -> AsyncIterator[bytes]:
        completed = False
        ACTIVE_SESSIONS.inc()
        try:
            async for chunk in body:
                yield chunk
            completed = True
        except Exception as exc:
            # The status line is gone already; tell the client in-band, then close.
            logger.exception("stream failed")
            yield frame("error", serde.dumps({"error": type(exc).__name__, "message": str(exc)}))
            completed = True
        finally:
            ACTIVE_SESSIONS.dec()
            if on_close is not None:
                await asyncio.shield(on_close(completed))

    return StreamingResponse(
        guarded(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )
