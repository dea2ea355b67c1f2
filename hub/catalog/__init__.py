"""The data catalog: every dataset the hub may hold, and every field's legal labels.

The catalog is the hub's record of processing activities (PIPL Art. 54 audits start here) and the
minimisation list (PIPL Art. 6): connectors keep only catalogued fields, policies decide per field
from these labels, and keys/ encrypts every field whose class is not ``none``.
"""

from hub.catalog.labels import (
    FieldType,
    Grade,
    IdentifierRole,
    MaskType,
    PIClass,
    SensitiveCategory,
    SharingAttribute,
)
from hub.catalog.loader import Catalog, load_catalog
from hub.catalog.schema import Agency, DatasetDefinition, FieldDefinition

__all__ = [
    "Agency",
    "Catalog",
    "DatasetDefinition",
    "FieldDefinition",
    "FieldType",
    "Grade",
    "IdentifierRole",
    "MaskType",
    "PIClass",
    "SensitiveCategory",
    "SharingAttribute",
    "load_catalog",
]
