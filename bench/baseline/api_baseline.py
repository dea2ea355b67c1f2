"""The unprotected baseline for bench/api.py: the same rows, found the same way, with no policy, decryption or audit."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from hub import heap
from hub.catalog import load_catalog
from hub.settings import get_settings
from hub.store import RecordStore, create_store_engine


def create_app() -> FastAPI:
    settings = get_settings()
    store = RecordStore(create_store_engine(settings.effective_database_url), load_catalog())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        heap.settle()  # as the hub's app does when served, so the two differ only in the protection
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/baseline/person-view")
    async def person_view(body: dict[str, str]) -> dict[str, Any]:
        records = store.by_subject(bytes.fromhex(body["subject_index"]))
        return {
            "records": [
                {
                    "dataset": r.dataset_id,
                    "record_key": r.record_key,
                    "fields": dict(r.clear_fields),
                    "sealed": base64.b64encode(r.sealed_fields).decode(),
                }
                for r in records
            ]
        }

    return app
