"""Application factory: one FastAPI app per settings object (and runtime), so tests can build isolated ones.

``uvicorn --factory hub.api.app:create_app`` opens a runtime per worker process; each worker appends
to the same audit log (the sequencer serialises writers across processes).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from audit.log import AuditUnavailable
from hub import __version__, heap
from hub.api.auth import Forbidden, Unauthorized, audit_failure
from hub.api.partner_keys import KeyNotValid, KeyRegistryError, UnknownKey
from hub.api.problems import PROBLEM_MEDIA_TYPE, RequestIdMiddleware, install_problem_handlers, problem
from hub.api.response_signing import ResponseSigningMiddleware
from hub.api.routes import admin, auditor, dev_idp, officer, partner, resident
from hub.api.runtime import RESPONSE_KEY_ID, HubRuntime
from hub.identifiers import IdentifierError
from hub.release import ServiceUnavailable
from hub.settings import Settings, get_settings
from keys.errors import KeystoreUnavailable
from policies.errors import AgreementError, PolicyInputError, SeparationOfDuties

DESCRIPTION = """
Cross-agency data sharing with need-to-know control and verifiable evidence.

* **Partner agencies' systems** sign every request (RFC 9421, Ed25519, `content-digest`, `created`, `nonce`);
  the hub signs every answer (label `hub`). The hub's response key: `GET /.well-known/hub-keys`.
* **Officers, auditors, admins and residents** send OIDC bearer tokens.
* Every error is `application/problem+json` (RFC 9457) with the request id, never personal data.
* Nothing is released before its audit entries are durable; if the audit log, key store or policy
  engine is down the answer is 503 and nothing leaves.
"""


class Health(BaseModel):
    status: str
    version: str
    database: str


class HubKeys(BaseModel):
    response_signing: dict[str, str]
    audit_verifier_keys: list[str]


def create_app(settings: Settings | None = None, runtime: HubRuntime | None = None) -> FastAPI:
    settings = settings or get_settings()
    hub = runtime or HubRuntime.open(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime is None:  # a served hub: keep the collector off the start-up heap (see hub.heap)
            heap.settle()
        yield
        if runtime is None:  # a runtime the app opened itself is the app's to close
            hub.close()

    app = FastAPI(
        lifespan=lifespan,
        title="hub",
        version=__version__,
        summary="Cross-agency data-sharing and privacy-compliance hub",
        description=DESCRIPTION,
    )
    app.state.hub = hub
    app.add_middleware(
        ResponseSigningMiddleware, key=hub.response_key, key_id=RESPONSE_KEY_ID, public_url=settings.api_public_url
    )
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app)
    _install_hub_handlers(app)
    for router in (partner.router, officer.router, auditor.router, resident.router, admin.router):
        app.include_router(router)
    if settings.dev_idp:
        app.include_router(dev_idp.router)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness and store reachability",
        responses={503: {"description": "the store is unreachable", "content": {PROBLEM_MEDIA_TYPE: {}}}},
    )
    def healthz() -> Health:
        try:
            with hub.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            raise HTTPException(status_code=503, detail="the store is unreachable") from None
        return Health(status="ok", version=__version__, database=hub.store.engine.dialect.name)

    @app.get("/.well-known/hub-keys", tags=["operations"], summary="The hub's response-signing and audit keys")
    def hub_keys() -> HubKeys:
        import base64

        return HubKeys(
            response_signing={
                "keyid": RESPONSE_KEY_ID,
                "alg": "ed25519",
                "public_key": base64.b64encode(hub.response_public_key).decode(),
            },
            audit_verifier_keys=hub.evidence.verifier_keys(),
        )

    return app


def _install_hub_handlers(app: FastAPI) -> None:
    async def unauthorized(request: Request, exc: Exception) -> Response:
        response = problem(request, 401, str(exc), getattr(exc, "kind", "unauthorized"))
        response.headers["WWW-Authenticate"] = getattr(exc, "challenge", 'Bearer realm="hub"')
        return response

    async def forbidden(request: Request, exc: Exception) -> Response:
        try:
            await audit_failure(request, "forbidden", getattr(request.state, "partner_key", "token-holder"))
        except ServiceUnavailable:
            return problem(request, 503, "the audit service is unavailable; nothing was released (fail closed)")
        return problem(request, 403, str(exc), "forbidden")

    async def unavailable(request: Request, exc: Exception) -> Response:
        component = (
            exc.component
            if isinstance(exc, ServiceUnavailable)
            else ("audit" if isinstance(exc, AuditUnavailable) else "keys")
        )
        response = problem(
            request,
            503,
            f"the {component} service is unavailable; nothing was released (fail closed)",
            "service-unavailable",
            component=component,
        )
        response.headers["Retry-After"] = "30"
        return response

    async def bad_input(request: Request, exc: Exception) -> Response:
        return problem(request, 400, str(exc), "invalid-request")

    async def conflict(request: Request, exc: Exception) -> Response:
        return problem(request, 409, str(exc), "conflict")

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(request, 404, str(exc), "not-found")

    async def duty(request: Request, exc: Exception) -> Response:
        return problem(request, 403, str(exc), "separation-of-duties")

    app.add_exception_handler(Unauthorized, unauthorized)
    app.add_exception_handler(Forbidden, forbidden)
    for down in (ServiceUnavailable, AuditUnavailable, KeystoreUnavailable):
        app.add_exception_handler(down, unavailable)
    for invalid in (PolicyInputError, IdentifierError, KeyRegistryError, KeyNotValid):
        app.add_exception_handler(invalid, bad_input)
    app.add_exception_handler(AgreementError, conflict)
    app.add_exception_handler(UnknownKey, not_found)
    app.add_exception_handler(SeparationOfDuties, duty)
