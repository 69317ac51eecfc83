"""A closed-loop load driver that counts the HTTP bytes of every request.

Byte counts are what went over the wire between client and API, reconstructed from the
request and response objects: request line, headers and body one way; status line,
headers and the raw (undecoded) body the other way. Chunked-encoding framing is not
counted (a few bytes per chunk).
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

# An operation returns (bytes sent, bytes received) of the requests it made.
Operation = Callable[[int], Awaitable[tuple[int, int]]]


def request_bytes(request: httpx.Request) -> int:
    """Request line + headers + body, as HTTP/1.1 sends them."""
    line = len(request.method) + 1 + len(request.url.raw_path) + len(" HTTP/1.1\r\n")
    headers = sum(len(k) + len(v) + 4 for k, v in request.headers.raw) + 2
    return line + headers + len(request.content)


def response_bytes(response: httpx.Response) -> int:
    """Status line + headers + the raw body bytes read so far."""
    line = len("HTTP/1.1 200 \r\n") + len(response.reason_phrase)
    headers = sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2
    return line + headers + response.num_bytes_downloaded


@dataclass(slots=True)
class LoadResult:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    first_error: str = ""


async def drive(
    count: int,
    concurrency: int,
    operation: Operation,
    on_done: Callable[[], None] = lambda: None,
    rate: float | None = None,
) -> LoadResult:
    """Run `operation(i)` for i in range(count), `concurrency` at a time. Without `rate`
    a closed loop (a slot starts its next request when the previous one finished); with
    it, paced: request i starts no earlier than i / rate seconds after the first, so the
    load is a fixed arrival rate as long as `concurrency` slots keep up."""
    result = LoadResult()
    next_index = 0
    started = time.perf_counter()

    async def slot() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            if rate:
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                sent, received = await operation(index)
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                result.errors += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"[:300]
            else:
                result.requests += 1
                result.bytes_in += sent
                result.bytes_out += received
            on_done()

    await asyncio.gather(*(slot() for _ in range(max(1, min(concurrency, count)))))
    return result


async def send(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: object
) -> tuple[httpx.Response, int, int]:
    """One request read to the end; raises RuntimeError on a non-2xx answer."""
    request = client.build_request(method, path, **kwargs)  # type: ignore[arg-type]
    response = await client.send(request)
    if response.status_code >= 300:
        raise RuntimeError(
            f"{method} {path} answered {response.status_code}: {response.text[:200]}"
        )
    return response, request_bytes(request), response_bytes(response)


async def send_stream(client: httpx.AsyncClient, path: str, body: object) -> tuple[int, int]:
    """POST a streaming request and read every SSE byte until the server ends it."""
    request = client.build_request("POST", path, json=body)
    response = await client.send(request, stream=True)
    try:
        if response.status_code >= 300:
            await response.aread()
            raise RuntimeError(f"POST {path} answered {response.status_code}")
        async for _ in response.aiter_raw():
            pass
    finally:
        await response.aclose()
    return request_bytes(request), response_bytes(response)
