"""Every error becomes `{"detail": "..."}` with the status the LangGraph Server API uses;
an unexpected one becomes a 500 that reveals nothing but a request id."""

import logging
import math

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from garrison.api.responses import json_response
from garrison.domain.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GarrisonError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
    UnavailableError,
)

logger = logging.getLogger("garrison.api")

_STATUS: dict[type[GarrisonError], int] = {
    NotFoundError: 404,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    TooManyRequestsError: 429,
    ConflictError: 409,
    InvalidArgumentError: 422,
    BadRequestError: 400,
    UnavailableError: 503,
}


class PayloadTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body too large (limit {limit} bytes)")
        self.limit = limit


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def validation_message(exc: RequestValidationError) -> str:
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return "Invalid JSON in request body"
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = error.get("msg", "invalid value")
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems) or "Invalid request"


def _body(request: Request, detail: str, status: int) -> dict[str, str]:
    """`{"detail"}`, plus the request id on a 5xx: the one thing an operator needs to find
    the logged cause, which the client is never shown (ASVS 16.5.1)."""
    if status >= 500:
        return {"detail": detail, "request_id": _request_id(request)}
    return {"detail": detail}


async def _garrison_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GarrisonError)
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    headers = None
    if isinstance(exc, TooManyRequestsError) and exc.retry_after is not None:
        headers = {"retry-after": str(max(1, math.ceil(exc.retry_after)))}
    elif isinstance(exc, AuthenticationError):
        headers = {"www-authenticate": "Bearer"}
    return json_response(_body(request, exc.detail, status), status, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_response({"detail": validation_message(exc)}, 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 204 or exc.status_code == 304:
        return Response(status_code=exc.status_code, headers=headers)
    return json_response(_body(request, str(exc.detail), exc.status_code), exc.status_code, headers)


async def _too_large(request: Request, exc: Exception) -> Response:
    return json_response({"detail": str(exc)}, 413)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = _request_id(request)
    logger.exception("unhandled error (request %s)", request_id, exc_info=exc)
    return json_response({"detail": "Internal server error", "request_id": request_id}, 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GarrisonError, _garrison_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(PayloadTooLargeError, _too_large)
    app.add_exception_handler(Exception, _unexpected)
