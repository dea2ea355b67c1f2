"""Database engines for the store, on either supported back end."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import SQLModel

from connectors import tables as _connector_tables  # noqa: F401
from hub.errors import SettingsError

# Importing the table modules registers them on SQLModel.metadata (the policies' tables live in the same store).
from hub.store import tables as _tables  # noqa: F401
from keys.sql import create_sql_engine
from policies import tables as _policy_tables  # noqa: F401


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their directory created and WAL mode."""
    try:
        return create_sql_engine(url)
    except ValueError as error:
        raise SettingsError(f"HUB_DATABASE_URL: {error}") from None


def init_schema(engine: Engine) -> None:
    """Create missing tables; existing ones are left as they are."""
    SQLModel.metadata.create_all(engine)
