from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hub.api import create_app
from hub.settings import load_settings
from hub.synthetic.serve import serve_in_thread


@pytest.fixture
def base_url(tmp_path: Path) -> object:
    settings = load_settings(var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'hub.db'}")
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_healthz_reports_the_store(base_url: str) -> None:
    response = httpx.get(f"{base_url}/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "sqlite"
    assert len(response.headers["x-request-id"]) == 32


def test_errors_are_problem_documents_with_the_request_id(base_url: str) -> None:
    response = httpx.get(f"{base_url}/no-such-thing", headers={"X-Request-Id": "req-12345678"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not Found" and body["request_id"] == "req-12345678"
    assert body["type"].endswith("/not-found")
    assert response.headers.get_list("x-request-id") == ["req-12345678"]  # echoed once, not twice
    malformed = httpx.get(f"{base_url}/healthz", headers={"X-Request-Id": "bad id; <script>"})
    assert malformed.headers["x-request-id"] != "bad id; <script>" and len(malformed.headers["x-request-id"]) == 32


def test_openapi_document_is_3_1(base_url: str) -> None:
    document = httpx.get(f"{base_url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert httpx.get(f"{base_url}/docs").status_code == 200


def test_the_dev_identity_provider_is_refused_in_production() -> None:
    from hub.errors import SettingsError

    with pytest.raises(SettingsError, match="HUB_DEV_IDP cannot be enabled with HUB_PROFILE=production"):
        load_settings(profile="production", dev_idp=True)
