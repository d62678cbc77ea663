"""What the emulator answers when something goes wrong: the Mixpeek error envelope
``{"success": false, "status": N, "error": {message, type, code, details}}``, and the
exception handlers that turn every failure (store errors, unknown routes, bugs) into it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from taxsync.emulator.errors import AlreadyExists, BadRequest, NotFound, StateFileError, StoreError

ERROR_TYPES: dict[int, str] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "AlreadyExistsError",
    422: "ValidationError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "InferenceServiceUnavailableError",
}


class ErrorReply(Exception):
    """An error response the emulator sends: raised in a route, answered with the Mixpeek
    error envelope. (Not ``taxsync.errors.ApiError``, which is the client receiving one.)"""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.code = code
        self.headers = headers


def error_response(
    status: int,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response carrying the Mixpeek error envelope."""
    body = {
        "success": False,
        "status": status,
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "Error"),
            "code": code,
            "details": details,
        },
    }
    return JSONResponse(body, status_code=status, headers=headers)


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """Starlette exception handlers answering every failure with the envelope."""
    return {
        ErrorReply: _error_reply,
        StoreError: _store_error,
        HTTPException: _http_exception,
        Exception: _unexpected_error,
    }


async def _error_reply(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ErrorReply)
    return error_response(exc.status, exc.message, exc.details, code=exc.code, headers=exc.headers)


_STORE_STATUS: dict[type[StoreError], int] = {
    NotFound: 404,
    AlreadyExists: 409,
    BadRequest: 400,
    StateFileError: 500,
}


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    status = _STORE_STATUS.get(type(exc), 500)
    return error_response(status, exc.message, exc.details)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Route not found: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "Internal server error")
