"""Every error becomes `{"detail": "..."}` with the status the LangGraph Server API uses;
an unexpected one becomes a 500 that reveals nothing but a request id."""

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from garrison.api.responses import json_response
from garrison.domain.errors import (
    BadRequestError,
    ConflictError,
    GarrisonError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
)

logger = logging.getLogger("garrison.api")

_STATUS: dict[type[GarrisonError], int] = {
    NotFoundError: 404,
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


async def _garrison_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GarrisonError)
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return json_response({"detail": exc.detail}, status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return json_response({"detail": validation_message(exc)}, 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 204 or exc.status_code == 304:
        return Response(status_code=exc.status_code, headers=headers)
    return json_response({"detail": str(exc.detail)}, exc.status_code, headers)


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
