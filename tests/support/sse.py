"""A small SSE reader for wire-level assertions (the SDK hides ids and comments)."""

from dataclasses import dataclass
from typing import Any

import httpx
import orjson


@dataclass
class Event:
    event: str
    data: Any
    id: str | None


async def read_sse(
    http: httpx.AsyncClient,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json: Any = None,
    limit: int | None = None,
) -> list[Event]:
    """Events of one SSE response (stopping after `limit` events, if given)."""
    events: list[Event] = []
    async with http.stream(method, path, headers=headers, json=json) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        name, data, event_id = None, None, None
        async for line in response.aiter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if name is not None:
                    events.append(Event(name, orjson.loads(data) if data else None, event_id))
                    if limit is not None and len(events) >= limit:
                        return events
                name, data, event_id = None, None, None
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value
            elif field == "id":
                event_id = value
    return events
