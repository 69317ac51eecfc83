"""A webhook receiver: a minimal HTTP server on loopback that records each POST."""

import asyncio
from types import TracebackType
from typing import Any

import orjson


class WebhookReceiver:
    def __init__(self, status: int = 204) -> None:
        self._status = status
        self._calls: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def next_call(self, within_seconds: float) -> tuple[str, Any]:
        """(path, JSON body) of the next request received."""
        return await asyncio.wait_for(self._calls.get(), within_seconds)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split(" ")[1]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        writer.write(f"HTTP/1.1 {self._status} OK\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        await self._calls.put((path, orjson.loads(body) if body else None))

    async def __aenter__(self) -> "WebhookReceiver":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
