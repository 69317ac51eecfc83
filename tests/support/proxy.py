"""A round-robin HTTP reverse proxy for tests: every request goes to the next backend, so
consecutive calls of one client (create, stream, cancel) land on different API processes.

Run as `python -m tests.support.proxy --port P --backend URL --backend URL`.
"""

import argparse
import itertools
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


def proxy_app(backends: list[str]) -> Starlette:
    turn = itertools.cycle(backends)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(None), limits=httpx.Limits(max_connections=500)
    )

    async def forward(request: Request) -> Response:
        target = next(turn)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        upstream = client.build_request(
            request.method,
            target + request.url.path,
            params=request.url.query,
            headers=headers,
            content=await request.body(),
        )
        response = await client.send(upstream, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in response.aiter_raw():
                yield chunk

        out_headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in _HOP_BY_HOP | {"content-length"}
        }
        out_headers["x-proxied-to"] = target
        return StreamingResponse(
            body(),
            status_code=response.status_code,
            headers=out_headers,
            background=BackgroundTask(response.aclose),
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", action="append", required=True)
    args = parser.parse_args()
    uvicorn.run(proxy_app(args.backend), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
