"""Append-only tables for entries, checkpoints and cosignatures, on SQLite and PostgreSQL.

Triggers reject UPDATE, DELETE and (PostgreSQL) TRUNCATE, and require contiguous sequence numbers.
On PostgreSQL the triggers are ``ENABLE ALWAYS``: an ordinary trigger does not fire under
``session_replication_role = replica``, which a superuser could set to slip past it. What triggers
cannot stop (DROP TABLE, a superuser disabling them, editing the SQLite file) the Merkle tree and
signed checkpoints detect: see docs/audit.md.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

metadata = MetaData()

entries = Table(
    "audit_entry",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("body", LargeBinary, nullable=False),
)
checkpoints = Table(
    "audit_checkpoint",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False, index=True),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("timestamp_token", LargeBinary, nullable=True),  # RFC 3161 response over the note's body
)
cosignatures = Table(
    "audit_cosignature",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("checkpoint_id", Integer, nullable=False, index=True),
    Column("witness", String(200), nullable=False),
    Column("line", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)
PROTECTED = ("audit_entry", "audit_checkpoint", "audit_cosignature")

_SQLITE = [
    *(
        f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{t} is append-only: {op} refused'); END"
        for t in PROTECTED
        for op in ("UPDATE", "DELETE")
    ),
    "CREATE TRIGGER IF NOT EXISTS audit_entry_contiguous BEFORE INSERT ON audit_entry "
    "WHEN NEW.seq != COALESCE((SELECT MAX(seq) FROM audit_entry), -1) + 1 "
    "BEGIN SELECT RAISE(ABORT, 'audit_entry sequence numbers must be contiguous'); END",
]

_POSTGRES = [
    """CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$""",
    """CREATE OR REPLACE FUNCTION audit_contiguous() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.seq <> COALESCE((SELECT max(seq) FROM audit_entry), -1) + 1 THEN
        RAISE EXCEPTION 'audit_entry sequence numbers must be contiguous';
      END IF;
      RETURN NEW;
    END $$""",
    *(
        stmt
        for t in PROTECTED
        for stmt in (
            f"CREATE OR REPLACE TRIGGER {t}_no_change BEFORE UPDATE OR DELETE ON {t} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse()",
            f"CREATE OR REPLACE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse()",
            f"ALTER TABLE {t} ENABLE ALWAYS TRIGGER {t}_no_change",
            f"ALTER TABLE {t} ENABLE ALWAYS TRIGGER {t}_no_truncate",
        )
    ),
    "CREATE OR REPLACE TRIGGER audit_entry_contiguous BEFORE INSERT ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_contiguous()",
    "ALTER TABLE audit_entry ENABLE ALWAYS TRIGGER audit_entry_contiguous",
]


INSTALL_LOCK = 0x6875622D696E7374  # pg_advisory_xact_lock key ("hub-inst")


def install(engine: Engine) -> None:
    """Create the tables and their guard triggers (idempotent), adding columns later versions need.

    Concurrent installs (two API workers starting on a fresh database) are serialised, by an advisory lock
    on PostgreSQL and the write lock on SQLite: check-then-create alone races, and the loser fails.
    """
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INSTALL_LOCK})
        else:  # SQLite: take the write lock before looking, so the look and the creation are one step
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        metadata.create_all(connection)
        columns = {c["name"] for c in inspect(connection).get_columns("audit_checkpoint")}
        if "timestamp_token" not in columns:  # logs created before time-stamping existed
            blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
            connection.execute(text(f"ALTER TABLE audit_checkpoint ADD COLUMN timestamp_token {blob}"))
        if engine.dialect.name == "postgresql":
            if _postgres_guards_in_place(connection):
                return  # an insert-only application role may not (and need not) run the DDL
            statements = _POSTGRES
        else:
            statements = _SQLITE
        for statement in statements:
            connection.execute(text(statement))


_PG_TRIGGERS = (
    [f"{t}_no_change" for t in PROTECTED] + [f"{t}_no_truncate" for t in PROTECTED] + ["audit_entry_contiguous"]
)


def _postgres_guards_in_place(connection: Connection) -> bool:
    """Every guard trigger exists and is ENABLE ALWAYS ('A')."""
    query = text("SELECT count(*) FROM pg_trigger WHERE tgname = ANY(:names) AND tgenabled = 'A'")
    return int(connection.execute(query, {"names": _PG_TRIGGERS}).scalar_one()) == len(_PG_TRIGGERS)
