"""The hub's store: agencies, catalog datasets and protected records, on SQLite or PostgreSQL.

Records cross into the store only as :class:`~hub.store.records.ProtectedRecord`: non-personal
fields in clear, every personal field sealed into bytes by keys/ before it gets here. There is no
column a plaintext personal value could be written to.
"""

from hub.store.engine import create_store_engine, init_access_schema, init_audit_schema, init_schema
from hub.store.records import JURISDICTION_FIELD, ProtectedRecord, RecordStore, SubjectGroup, jurisdiction_of
from hub.store.tables import AgencyRow, DatasetRow, RecordRow

__all__ = [
    "JURISDICTION_FIELD",
    "AgencyRow",
    "DatasetRow",
    "ProtectedRecord",
    "RecordRow",
    "RecordStore",
    "SubjectGroup",
    "create_store_engine",
    "init_access_schema",
    "init_audit_schema",
    "init_schema",
    "jurisdiction_of",
]
