"""RFC 9457 problem details for every error response.

Handlers build the body from the status and a fixed detail; validation errors name the offending
parameter location but never echo the submitted value, which may be personal data.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from hub.errors import HubError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://hub.invalid/problems/"
REQUEST_ID_HEADER = "X-Request-Id"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def problem(request: Request, status: int, detail: str, kind: str | None = None, **extra: Any) -> ProblemResponse:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (kind or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
        "detail": detail,
        "request_id": request_id_of(request),
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers={REQUEST_ID_HEADER: request_id_of(request)})


class RequestIdMiddleware(BaseHTTPMiddleware):
    """Give every request an id (a caller's own well-formed id is kept) and echo it on the response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        presented = request.headers.get(REQUEST_ID_HEADER, "")
        valid = 8 <= len(presented) <= 64 and all(c.isalnum() or c in "-_" for c in presented)
        request.state.request_id = presented if valid else uuid.uuid4().hex
        response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        return response


def install_problem_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            return await unexpected(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(request, exc.status_code, detail)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            return await unexpected(request, exc)
        errors = [
            {"location": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem(request, 422, "the request does not match the API schema", "validation", errors=errors)

    async def hub_error(request: Request, exc: Exception) -> Response:
        return problem(request, 400, str(exc), "hub-error")

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Deliberately generic: an unexpected exception's text may contain data.
        return problem(request, 500, "internal error; quote the request id to the operator")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HubError, hub_error)
    app.add_exception_handler(Exception, unexpected)
