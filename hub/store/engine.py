"""Database engines for the store, on either supported back end."""

from __future__ import annotations

from sqlalchemy import Engine, inspect
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


# Columns added to a table after its first release: (table, column, DDL type with default). Each is added to
# an existing table that lacks it; the DDL is constant text, nothing from outside reaches it.
_ADDED_COLUMNS = (("access_index", "records", "INTEGER NOT NULL DEFAULT 1"),)


def init_schema(engine: Engine) -> None:
    """Create missing tables, and add columns that later versions gave existing tables."""
    SQLModel.metadata.create_all(engine)
    inspector = inspect(engine)
    for table, column, ddl in _ADDED_COLUMNS:
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
