"""Long waits over HTTP (`runs/wait`, `join`, `cancel?wait=1`): newline keep-alives until
the final JSON, as LangGraph Server sends them (leading whitespace is legal JSON)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from fastapi import Request, Response
from starlette.responses import StreamingResponse

from garrison.api.responses import JSON, raw_json

KEEP_ALIVE = b"\n"


async def wait_response(
    request: Request,
    ticks: AsyncIterator[bytes | None],
    *,
    headers: Mapping[str, str] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """Answer with the first non-None tick. A fast result goes out as a plain response;
    a slow one switches to a streamed body with a newline per idle tick."""
    if on_disconnect is None:
        first_tick = await anext(ticks)  # nobody to cancel on disconnect: no watcher task
    else:
        watched = await _first_tick_or_disconnect(request, ticks)
        if isinstance(watched, _Disconnected):
            await on_disconnect()
            return Response(status_code=499)
        first_tick = watched
    if first_tick is not None:
        return raw_json(first_tick, headers)
    return StreamingResponse(
        _keep_alive(ticks, on_disconnect), media_type=JSON, headers=dict(headers or {})
    )


class _Disconnected:
    """The client went away before the first tick."""


async def _first_tick_or_disconnect(
    request: Request, ticks: AsyncIterator[bytes | None]
) -> bytes | _Disconnected | None:
    disconnected = asyncio.ensure_future(_disconnect(request))
    first = asyncio.ensure_future(anext(ticks))
    try:
        await asyncio.wait({first, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnected.cancel()
    if first.done():
        return first.result()
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await first
    return _Disconnected()


async def _keep_alive(
    ticks: AsyncIterator[bytes | None], on_disconnect: Callable[[], Awaitable[None]] | None
) -> AsyncIterator[bytes]:
    completed = False
    try:
        yield KEEP_ALIVE
        async for tick in ticks:
            if tick is None:
                yield KEEP_ALIVE
            else:
                yield tick
                completed = True
                return
    finally:
        if not completed and on_disconnect is not None:
            await asyncio.shield(on_disconnect())


async def _disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
