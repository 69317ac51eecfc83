"""A fake OpenAI-compatible server: ``POST /v1/chat/completions``, plain and SSE."""

import asyncio
import json
from typing import Any

from tests.support.fakellm.behaviours import Answer, Behaviour, Drop, Fail, Hang, Stall
from tests.support.fakellm.http import Connection, FakeHTTPServer, RecordedRequest


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _events(model: str, answer: Answer, include_usage: bool) -> list[dict[str, Any]]:
    """The SSE payloads of a streamed answer, role chunk first (no token yet)."""
    events = [_chunk(model, {"role": "assistant", "content": ""})]
    events += [_chunk(model, {"content": token}) for token in answer.tokens()]
    for index, call in enumerate(answer.tool_calls):
        arguments = json.dumps(call.args)
        middle = len(arguments) // 2
        first = {"index": index, "id": call.id, "type": "function"}
        events.append(
            _chunk(
                model, {"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]}
            )
        )
        for piece in (arguments[:middle], arguments[middle:]):
            events.append(
                _chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    events.append(_chunk(model, {}, "tool_calls" if answer.tool_calls else "stop"))
    if include_usage:
        events.append({**_chunk(model, {}), "choices": [], "usage": _usage(answer)})
    return events


class FakeOpenAI(FakeHTTPServer):
    """Speaks enough of the Chat Completions API for ``ChatOpenAI``."""

    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def handle(
        self, request: RecordedRequest, behaviour: Behaviour, conn: Connection
    ) -> None:
        model = request.body.get("model", "fake")
        stream = bool(request.body.get("stream"))
        include_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
        if isinstance(behaviour, Fail):
            error = {"error": {"message": behaviour.message, "type": "fake_error", "code": None}}
            await conn.send(behaviour.status, error, dict(behaviour.headers))
        elif isinstance(behaviour, Hang) or (isinstance(behaviour, Stall) and not stream):
            await asyncio.sleep(behaviour.seconds)
            conn.drop()
        elif not stream:
            await self._complete(
                conn,
                model,
                behaviour.answer if isinstance(behaviour, Drop) else behaviour,
                isinstance(behaviour, Drop),
            )
        else:
            await self._stream(conn, model, behaviour, include_usage)

    async def _complete(self, conn: Connection, model: str, answer: Answer, drop: bool) -> None:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
        if answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.args)},
                }
                for c in answer.tool_calls
            ]
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if answer.tool_calls else "stop",
                }
            ],
            "usage": _usage(answer),
        }
        if drop:
            await conn.start_stream("application/json")
            await conn.chunk(json.dumps(body).encode()[:20])
            conn.drop()
            return
        await asyncio.sleep(answer.token_delay * len(answer.tokens()))
        await conn.send(200, body)

    async def _stream(
        self, conn: Connection, model: str, behaviour: Answer | Stall | Drop, include_usage: bool
    ) -> None:
        answer = (
            behaviour.answer
            if isinstance(behaviour, Drop)
            else behaviour
            if isinstance(behaviour, Answer)
            else Answer()
        )
        events = _events(model, answer, include_usage)
        await conn.start_stream()
        await conn.chunk(f"data: {json.dumps(events[0])}\n\n".encode())
        if isinstance(behaviour, Stall):
            await asyncio.sleep(behaviour.seconds)
            conn.drop()
            return
        for sent, event in enumerate(events[1:]):
            if isinstance(behaviour, Drop) and sent >= behaviour.after_tokens:
                conn.drop()
                return
            if answer.token_delay:
                await asyncio.sleep(answer.token_delay)
            await conn.chunk(f"data: {json.dumps(event)}\n\n".encode())
        await conn.chunk(b"data: [DONE]\n\n")
        await conn.end_stream()
