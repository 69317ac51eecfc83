"""JSON responses written with orjson (the server's one encoder, see garrison.serde)."""

from collections.abc import Mapping
from typing import Any

from fastapi import Response

from garrison import serde

JSON = "application/json"


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(serde.dumps(content), status_code, headers=headers, media_type=JSON)


def raw_json(body: bytes, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, 200, headers=headers, media_type=JSON)


def no_content() -> Response:
    return Response(status_code=204)


def pagination_headers(offset: int, returned: int, limit: int, has_more: bool) -> dict[str, str]:
    """X-Pagination-Next / -Total as LangGraph Server sends them."""
    if has_more:
        following = offset + limit
        return {"X-Pagination-Next": str(following), "X-Pagination-Total": str(following + 1)}
    return {"X-Pagination-Total": str(offset + returned)}
