"""An OPA-REST-compatible endpoint backed by the real OPA engine (opa-golib-python-bindings).

No OPA binary can be installed from the registries this project uses, so tests and the development
profile exercise the ``opa-python-client`` path against this small server instead: it speaks the
subset of OPA's REST API the client uses (policies PUT/GET, data POST, health), and evaluates with
the same Go engine an OPA server runs.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse


def create_app() -> FastAPI:
    from opa_bindings.engine import OpaEngine, OpaError, OpaUndefinedError

    engine = OpaEngine()
    policies: dict[str, str] = {}
    lock = threading.Lock()
    app = FastAPI(title="OPA-REST-compatible policy endpoint (OPA engine in process)")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {}

    @app.get("/v1/policies/")
    @app.get("/v1/policies")
    def list_policies() -> dict[str, Any]:
        return {"result": [{"id": k, "raw": v} for k, v in policies.items()]}

    @app.put("/v1/policies/{policy_id:path}")
    async def put_policy(policy_id: str, request: Request) -> JSONResponse:
        text = (await request.body()).decode("utf-8")
        with lock:
            try:
                engine.add_policy(policy_id, text)
            except OpaError as error:
                return JSONResponse({"code": "invalid_parameter", "message": str(error)}, status_code=400)
            policies[policy_id] = text
        return JSONResponse({})

    @app.post("/v1/data/{path:path}")
    def data(path: str, body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:  # noqa: B008
        with lock:
            try:
                return {"result": engine.eval_document(path.replace("/", "."), body.get("input"))}
            except OpaUndefinedError:
                return {}
            except OpaError as error:
                raise HTTPException(status_code=500, detail=str(error)) from None

    return app
