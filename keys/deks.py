"""Wrapped data keys (DEKs), one per subject, in a SQL table of their own.

The table lives in the keys database (by default a SQLite file beside the keystore), not in the
record store, so a dump of the store alone holds ciphertext without any key. A shredded DEK keeps its
row with ``wrapped`` set to NULL: decryption then reports :class:`~keys.errors.KeyShredded` instead
of an unknown key, and no new data can be sealed for an erased subject.
"""

from __future__ import annotations

from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, SmallInteger, String, Table

from keys.sql import create_sql_engine

metadata = MetaData()

dek_table = Table(
    "key_dek",
    metadata,
    Column("dek_id", LargeBinary(16), primary_key=True),
    Column("subject_ref", LargeBinary(64), unique=True, nullable=True),
    Column("suite", SmallInteger, nullable=False),
    Column("kek_id", String(64), nullable=False),
    Column("kek_version", Integer, nullable=False, index=True),
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("shredded_at", String(32), nullable=True),
)


def create_keys_engine(url: str) -> Engine:
    # secure_delete overwrites freed pages with zeros, so a shredded key does not linger in free space.
    engine = create_sql_engine(url, ("secure_delete=ON",))
    metadata.create_all(engine)
    return engine
