"""One error shape for every failure: ``{"error": {"code": ..., "message": ...}}``.

Bad input is a 4xx naming the file and the problem; anything unexpected becomes a JSON
500 (logged with its traceback) instead of an HTML page or a dropped connection.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .schemas import ErrorDetail, ErrorResponse

log = logging.getLogger("imgcls.serve")

# Status of each ImageDecodeError kind (see imgcls.data.decode).
DECODE_STATUS = {"empty": (422, "empty_file"), "not_image": (415, "not_an_image"),
                 "truncated": (422, "truncated_image"), "too_many_pixels": (413, "too_many_pixels"),
                 "unreadable": (422, "corrupt_image"), "no_mask": (422, "mask_required"),
                 "no_pixel_data": (422, "no_pixel_data")}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               503: "not_ready"}


class ApiError(Exception):
    """An error answer: HTTP status, stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict:
    return ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump()


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def documented(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for these error statuses, all with the ErrorResponse body."""
    text = {400: "Malformed request", 401: "Missing or wrong API key",
            403: "Reload is disabled: no API key is configured", 404: "Unknown model or version",
            409: "Not possible for this model: abstain without an unknown detector, the drift watch "
                 "off, no ONNX graph for the browser",
            413: "Body, image or image count over the limit", 415: "Not an image / unsupported body",
            422: "Invalid field, bad base64, empty, corrupt or truncated image",
            503: "Model still loading, or it failed to load", 500: "Unexpected server error"}
    return {s: {"model": ErrorResponse, "description": text[s]} for s in (*statuses, 500)}


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code).inc()


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    _count(request, exc.code)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    _count(request, "invalid_request")
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(422, "invalid_request", f"{field}: {first.get('msg', 'invalid')}")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    _count(request, code)
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    _count(request, "internal_error")
    return error_response(500, "internal_error", "Internal server error; the server log has the details.")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
