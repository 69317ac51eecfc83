"""A fake Anthropic server: ``POST /v1/messages``, plain and streamed events."""

import asyncio
import json
from typing import Any

from tests.support.fakellm.behaviours import Answer, Behaviour, Drop, Fail, Hang, Stall
from tests.support.fakellm.http import Connection, FakeHTTPServer, RecordedRequest


def _message(model: str, answer: Answer, *, complete: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if complete:
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        content += [
            {
                "type": "tool_use",
                "id": c.id.replace("call", "toolu"),
                "name": c.name,
                "input": dict(c.args),
            }
            for c in answer.tool_calls
        ]
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": ("tool_use" if answer.tool_calls else "end_turn") if complete else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.input_tokens,
            "output_tokens": answer.output_tokens if complete else 1,
        },
    }


def _events(model: str, answer: Answer) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of a streamed answer; ``message_start`` carries no token."""
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {"type": "message_start", "message": _message(model, answer, complete=False)},
        )
    ]
    index = 0
    if answer.text:
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        events += [
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": token},
                },
            )
            for token in answer.tokens()
        ]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for offset, call in enumerate(answer.tool_calls):
        block = index + offset
        arguments = json.dumps(dict(call.args))
        middle = len(arguments) // 2
        tool_id = call.id.replace("call", "toolu")
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": block,
                    "content_block": {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": call.name,
                        "input": {},
                    },
                },
            )
        )
        for piece in (arguments[:middle], arguments[middle:]):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": block}))
    stop_reason = "tool_use" if answer.tool_calls else "end_turn"
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {
                    "input_tokens": answer.input_tokens,
                    "output_tokens": answer.output_tokens,
                },
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _encode(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeHTTPServer):
    """Speaks enough of the Messages API for ``ChatAnthropic``."""

    path = "/v1/messages"

    async def handle(
        self, request: RecordedRequest, behaviour: Behaviour, conn: Connection
    ) -> None:
        model = request.body.get("model", "fake")
        stream = bool(request.body.get("stream"))
        if isinstance(behaviour, Fail):
            error = {"type": "error", "error": {"type": "api_error", "message": behaviour.message}}
            await conn.send(behaviour.status, error, dict(behaviour.headers))
        elif isinstance(behaviour, Hang) or (isinstance(behaviour, Stall) and not stream):
            await asyncio.sleep(behaviour.seconds)
            conn.drop()
        elif not stream:
            answer = behaviour.answer if isinstance(behaviour, Drop) else behaviour
            if isinstance(behaviour, Drop):
                await conn.start_stream("application/json")
                await conn.chunk(b'{"id": "msg_fake", ')
                conn.drop()
                return
            await conn.send(200, _message(model, answer, complete=True))
        else:
            await self._stream(conn, model, behaviour)

    async def _stream(self, conn: Connection, model: str, behaviour: Answer | Stall | Drop) -> None:
        answer = (
            behaviour.answer
            if isinstance(behaviour, Drop)
            else behaviour
            if isinstance(behaviour, Answer)
            else Answer()
        )
        events = _events(model, answer)
        await conn.start_stream()
        await conn.chunk(_encode(*events[0]))
        if isinstance(behaviour, Stall):
            await asyncio.sleep(behaviour.seconds)
            conn.drop()
            return
        tokens = 0
        for name, data in events[1:]:
            is_token = name == "content_block_delta" or (
                name == "content_block_start" and data["content_block"]["type"] == "tool_use"
            )
            if isinstance(behaviour, Drop) and is_token and tokens >= behaviour.after_tokens:
                conn.drop()
                return
            tokens += is_token
            if answer.token_delay and is_token:
                await asyncio.sleep(answer.token_delay)
            await conn.chunk(_encode(name, data))
        await conn.end_stream()
