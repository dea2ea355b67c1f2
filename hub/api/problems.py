"""RFC 9457 problem details for every error response.

Handlers build the body from the status and a fixed detail; validation errors name the offending
parameter location but never echo the submitted value, which may be personal data.
"""

from __future__ import annotations

import random
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import HubError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://hub.invalid/problems/"
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")  # ASGI header names arrive lower-cased


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


class RequestIdMiddleware:
    """Give every request an id (a caller's own well-formed id is kept) and echo it on the response.

    Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs each request in its own task group
    with memory streams: measured here, that plumbing cost more than the whole lookup behind a person view.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                presented = value.decode("latin-1")
                break
        valid = 8 <= len(presented) <= 64 and all(c.isalnum() or c in "-_" for c in presented)
        # An id, not a secret: 128 bits from the process's Mersenne Twister (seeded from the OS at start).
        # uuid4 reads the OS's random source on every request, and that system call lets the worker threads
        # take the GIL from the event loop for up to a switch interval (5 ms) before it can go on.
        request_id = presented if valid else f"{random.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = (_REQUEST_ID_KEY, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != _REQUEST_ID_KEY]
                message = {**message, "headers": [*headers, echoed]}
            await send(message)

        await self.app(scope, receive, send_with_id)


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
