"""The errors every protected route may answer, in the OpenAPI document.

They come from middleware (authentication, rate limits, the body cap), not from the
routes' own code, so FastAPI cannot see them; without them a client generated from the
schema, or a fuzzer checking conformance, would call them undocumented."""

from collections.abc import Iterable
from typing import Any

from fastapi.routing import APIRoute
from fastapi.utils import create_model_field
from starlette.routing import BaseRoute

from garrison.auth.route_policy import PUBLIC, permission_for
from garrison.schemas.common import ErrorBody

_ERROR = {"model": ErrorBody}
_PROTECTED: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "Missing or invalid credentials"},
    403: {**_ERROR, "description": "The caller may not do this"},
    429: {**_ERROR, "description": "Rate limit or run cap reached; see Retry-After"},
    503: {**_ERROR, "description": "Authentication is temporarily unavailable"},
}
_WITH_BODY: dict[int | str, dict[str, Any]] = {
    413: {**_ERROR, "description": "Request body over the size limit"},
}


def document_middleware_errors(routes: Iterable[BaseRoute]) -> None:
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        methods = route.methods or set()
        if any(permission_for(method, route.path) is not PUBLIC for method in methods):
            _add(route, _PROTECTED)
        if methods & {"POST", "PUT", "PATCH"}:
            _add(route, _WITH_BODY)


def _add(route: APIRoute, responses: dict[int | str, dict[str, Any]]) -> None:
    """Add responses the route does not document itself. FastAPI reads a response's schema
    from `response_fields`, which it fills when the route is made: fill it the same way."""
    for status, response in responses.items():
        if status in route.responses:
            continue
        route.responses[status] = response
        route.response_fields[status] = create_model_field(
            name=f"Response_{status}_{route.unique_id}", type_=ErrorBody, mode="serialization"
        )


__all__ = ["document_middleware_errors"]
