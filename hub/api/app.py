"""Application factory: one FastAPI app per settings object, so tests can build isolated ones."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from hub import __version__
from hub.api.problems import PROBLEM_MEDIA_TYPE, RequestIdMiddleware, install_problem_handlers
from hub.settings import Settings, get_settings
from hub.store import create_store_engine


class Health(BaseModel):
    status: str
    version: str
    database: str


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = create_store_engine(settings.effective_database_url)
    app = FastAPI(
        title="hub",
        version=__version__,
        summary="Cross-agency data-sharing and privacy-compliance hub",
    )
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness and store reachability",
        responses={503: {"description": "the store is unreachable", "content": {PROBLEM_MEDIA_TYPE: {}}}},
    )
    def healthz() -> Health:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            raise HTTPException(status_code=503, detail="the store is unreachable") from None
        return Health(status="ok", version=__version__, database=engine.dialect.name)

    return app
