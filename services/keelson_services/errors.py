"""One error format for every 4xx and 5xx of every service:

    {"error": {"code": "rate_limited", "message": "Too many requests", "details": {...}}}

`code` is a stable snake_case word for programs, `message` a sentence for people, `details`
whatever helps fix the request (validation errors by field, the retry delay, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

# The code of an error raised without one (FastAPI's own 404/405, a plain HTTPException).
DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.", examples=["validation_failed"])
    message: str = Field(description="Human-readable explanation.")
    details: dict[str, Any] = Field(default_factory=dict, description="Context that helps fix the request.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An error a route raises on purpose. A subclass of Starlette's HTTPException, so that
    FastAPI passes it through untouched even when it is raised while a body is being read."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, dict(headers) if headers else None)
        self.code = code
        self.message = message
        self.details = dict(details or {})


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": dict(details or {})}}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=dict(headers or {}))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def http_exception_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, details=exc.details, headers=exc.headers)
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else _phrase(exc.status_code)
    code = DEFAULT_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    return error_response(exc.status_code, code, message, headers=exc.headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors, cut to what a client needs: where, what, and the error type."""
    return [
        {"location": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in errors
    ]


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_details(exc.errors())
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "The request body is not valid JSON", details={"errors": errors})
    return error_response(422, "validation_failed", "The request is not valid", details={"errors": errors})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
