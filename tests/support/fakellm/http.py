"""A minimal HTTP/1.1 server on loopback, run by asyncio in a background thread.

Raw asyncio (rather than an ASGI server) gives the fakes byte-level control:
dropping a connection in the middle of a chunked stream, or stalling before the
response head, exactly as a failing provider would.
"""

import asyncio
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from tests.support.fakellm.behaviours import Answer, Behaviour


@dataclass
class RecordedRequest:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class Connection:
    """Response side of one HTTP connection."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.closed = False

    async def send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        head = {"content-type": "application/json", "content-length": str(len(payload))}
        await self._write_head(status, {**head, **(headers or {})})
        await self._write(payload)

    async def start_stream(self, content_type: str = "text/event-stream") -> None:
        await self._write_head(200, {"content-type": content_type, "transfer-encoding": "chunked"})

    async def chunk(self, data: bytes) -> None:
        await self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def end_stream(self) -> None:
        await self._write(b"0\r\n\r\n")

    def drop(self) -> None:
        """Close without finishing the response: the client sees a broken stream."""
        self.closed = True
        self._writer.transport.abort()

    async def _write_head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} Fake", *(f"{k}: {v}" for k, v in headers.items())]
        await self._write(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError:
            self.closed = True


class FakeHTTPServer(ABC):
    """Serves ``path`` with scripted behaviours; other paths get 404.

    Behaviours are taken from the script queue, then from ``responder`` (a
    function of the request body), then ``default``.
    """

    path = "/"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.default: Behaviour = Answer()
        self.responder: Callable[[dict[str, Any]], Behaviour] | None = None
        self._script: deque[Behaviour] = deque()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next requests, in order."""
        self._script.extend(behaviours)

    def start(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    @abstractmethod
    async def handle(
        self, request: RecordedRequest, behaviour: Behaviour, conn: Connection
    ) -> None:
        """Answer one request on ``path`` as ``behaviour`` says."""

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(writer)
        try:
            while not conn.closed:
                request = await self._read_request(reader)
                if request is None:
                    break
                if request.path != self.path:
                    await conn.send(404, {"error": {"message": f"no route {request.path}"}})
                    continue
                self.requests.append(request)
                await self.handle(request, self._next_behaviour(request.body), conn)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    def _next_behaviour(self, body: dict[str, Any]) -> Behaviour:
        if self._script:
            return self._script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return self.default

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        path = request_line.split(" ")[1].split("?")[0]
        return RecordedRequest(path, headers, json.loads(raw) if raw else {}, time.monotonic())
