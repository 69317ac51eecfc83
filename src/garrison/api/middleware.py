"""Pure ASGI middleware (no per-request task or response buffering): request ids and the
request body size limit."""

import json
import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison.api.errors import PayloadTooLargeError
from garrison.observability import logs

logger = logging.getLogger("garrison.api")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Accepts a sane incoming `x-request-id` or makes one; echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), ""
        )
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        with logs.bind_request(request_id, scope["path"]):  # ids on every log line
            await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or while streaming in.

    FastAPI's own `max_body_size` answers a too-long Content-Length with a text/plain 413;
    this API promises `{"detail": ...}` JSON on every error, hence this middleware.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_too_large(send, self.max_bytes)
                return
        received = 0
        too_large = started = replaced = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise PayloadTooLargeError(self.max_bytes)
            return message

        async def send_413_instead(message: Message) -> None:
            # FastAPI turns an error while reading the body into its own 400; whatever the
            # app answers once the body overflowed, the client gets the 413.
            nonlocal started, replaced
            if replaced:
                return  # the rest of the app's answer, replaced by the 413
            if too_large and not started:
                replaced = True
                await _send_too_large(send, self.max_bytes)
                return
            started = True
            await send(message)

        await self.app(scope, limited_receive, send_413_instead)


class UnexpectedErrorMiddleware:
    """Answers an exception no handler took with the bare 500 of `api.errors`, here,
    inside the request-id layer: the response then carries its `x-request-id`, and the
    keep-alive connection survives (Starlette's outermost handler answers outside every
    middleware, then re-raises, and uvicorn closes the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = scope.get("state", {}).get("request_id", "")
            logger.exception("unhandled error (request %s)", request_id)
            if started:
                raise  # too late for a clean answer: let the server drop the connection
            body = json.dumps({"detail": "Internal server error", "request_id": request_id})
            await _send_json(send, 500, body.encode())


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_too_large(send: Send, limit: int) -> None:
    body = b'{"detail":"Request body too large (limit %d bytes)"}' % limit
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
