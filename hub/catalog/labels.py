"""The label vocabularies a catalog field or dataset must carry.

Values are the exact strings written in the catalog files; they are also what policies and the audit
log see, so renaming one is a breaking change to stored evidence.
"""

from enum import StrEnum

from keys.masking import MaskType

__all__ = [
    "FieldType",
    "Grade",
    "IdentifierRole",
    "MaskType",
    "PIClass",
    "SensitiveCategory",
    "SharingAttribute",
]


class PIClass(StrEnum):
    """Personal-information class (PIPL Art. 4 and Art. 28)."""

    NONE = "none"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"


class SensitiveCategory(StrEnum):
    """The sensitive-PI categories enumerated by PIPL Art. 28."""

    MEDICAL_HEALTH = "medical_health"
    FINANCIAL_ACCOUNT = "financial_account"
    SPECIFIC_IDENTITY = "specific_identity"
    WHEREABOUTS = "whereabouts"
    MINOR_UNDER_14 = "minor_under_14"
    BIOMETRIC = "biometric"
    RELIGION = "religion"


class IdentifierRole(StrEnum):
    """What a field does in identifying a person; drives blind indexing and masking defaults."""

    SUBJECT_ID = "subject_id"  # the record subject's national ID number: the cross-agency join key
    OTHER_PERSON_ID = "other_person_id"  # ID numbers of people other than the subject
    NAME = "name"
    CONTACT = "contact"  # phone numbers and the like
    ADDRESS = "address"
    FREE_TEXT = "free_text"  # narratives that may mention anyone
    QUASI_IDENTIFIER = "quasi_identifier"  # identifies in combination (birth date, school, exact time)
    ATTRIBUTE = "attribute"  # describes the subject without identifying them
    RECORD_KEY = "record_key"  # the source system's own key for the record
    NONE = "none"


class Grade(StrEnum):
    """Data grade under the Data Security Law Art. 21 and GB/T 43697."""

    GENERAL = "general"
    IMPORTANT = "important"
    CORE = "core"


class SharingAttribute(StrEnum):
    """Sharing attribute under the Regulation on Government Data Sharing."""

    UNCONDITIONAL = "unconditional"
    CONDITIONAL = "conditional"
    NOT_SHARED = "not_shared"


class FieldType(StrEnum):
    """Value types the connectors coerce source values into."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ID_NUMBER = "id_number"  # 18-digit resident identity number, GB 11643
    ID_NUMBER_LIST = "id_number_list"
    PHONE = "phone"
    ENUM = "enum"
