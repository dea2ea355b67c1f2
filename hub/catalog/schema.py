"""Pydantic models of catalog files: what a complete, internally consistent definition looks like.

Every label is required with no default. A forgotten label is the catalog's most dangerous error (a
field that silently counts as non-personal would be released and stored in clear), so the models
refuse it instead of guessing.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.catalog.labels import (
    FieldType,
    Grade,
    IdentifierRole,
    MaskType,
    PIClass,
    SensitiveCategory,
    SharingAttribute,
)

_CODE = r"^[a-z][a-z0-9_]*$"
_DATASET_ID = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Agency(_Strict):
    """A data-providing or data-consuming government agency."""

    code: str = Field(pattern=_CODE)
    name: str
    name_zh: str
    jurisdiction: str = Field(description="administrative division code the agency serves")


class FieldDefinition(_Strict):
    """One field and its labels. ``name`` is filled in from its key in the catalog file."""

    name: str = Field(pattern=_CODE)
    description: str
    type: FieldType
    pi: PIClass
    sensitive_category: SensitiveCategory | None = None
    role: IdentifierRole
    grade: Grade
    mask: MaskType
    enum_values: tuple[str, ...] = ()
    required: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.pi is PIClass.SENSITIVE and self.sensitive_category is None:
            raise ValueError("a sensitive field needs 'sensitive_category' (its PIPL Art. 28 category)")
        if self.pi is not PIClass.SENSITIVE and self.sensitive_category is not None:
            raise ValueError("'sensitive_category' is only for fields whose 'pi' is 'sensitive'")
        if self.pi is not PIClass.NONE and self.mask is MaskType.NONE:
            raise ValueError("a personal field needs a real display mask, not 'NONE'")
        if self.type is FieldType.ENUM and not self.enum_values:
            raise ValueError("an enum field needs 'enum_values'")
        if self.role in (IdentifierRole.SUBJECT_ID, IdentifierRole.OTHER_PERSON_ID, IdentifierRole.NAME) and (
            self.pi is PIClass.NONE
        ):
            raise ValueError(f"a field with role '{self.role}' identifies a person; 'pi' cannot be 'none'")
        return self

    @property
    def is_personal(self) -> bool:
        return self.pi is not PIClass.NONE


class Sharing(_Strict):
    attribute: SharingAttribute
    legal_reason: str | None = Field(default=None, description="required for not_shared and conditional")

    @model_validator(mode="after")
    def _reason(self) -> Self:
        if self.attribute is not SharingAttribute.UNCONDITIONAL and not self.legal_reason:
            raise ValueError(f"sharing attribute '{self.attribute}' needs a 'legal_reason'")
        return self


_RETENTION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


class DatasetDefinition(_Strict):
    """A dataset: its owner, sharing attribute, retention, subject field and labelled fields."""

    id: str = Field(pattern=_DATASET_ID)
    title: str
    owner: str = Field(pattern=_CODE)
    source_system: str
    description: str
    sharing: Sharing
    retention: str = Field(description="ISO 8601 period, e.g. P5Y")
    subject_field: str
    record_key_field: str
    fields: tuple[FieldDefinition, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not _RETENTION.match(self.retention) or self.retention == "P":
            raise ValueError(f"retention {self.retention!r} is not an ISO 8601 period like P5Y or P180D")
        if self.id.split(".")[0] != self.owner:
            raise ValueError(f"dataset id {self.id!r} must start with its owner agency {self.owner!r}")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("field names repeat")
        by_name = {f.name: f for f in self.fields}
        subject = by_name.get(self.subject_field)
        if subject is None:
            raise ValueError(f"subject_field {self.subject_field!r} is not one of the dataset's fields")
        if subject.role is not IdentifierRole.SUBJECT_ID:
            raise ValueError(f"subject_field {self.subject_field!r} must have role 'subject_id'")
        if self.record_key_field not in by_name:
            raise ValueError(f"record_key_field {self.record_key_field!r} is not one of the dataset's fields")
        return self

    @property
    def agency(self) -> str:
        return self.owner

    def field(self, name: str) -> FieldDefinition:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def personal_fields(self) -> tuple[FieldDefinition, ...]:
        return tuple(f for f in self.fields if f.is_personal)

    @property
    def sensitive_fields(self) -> tuple[FieldDefinition, ...]:
        return tuple(f for f in self.fields if f.pi is PIClass.SENSITIVE)

    @property
    def retention_days(self) -> int:
        match = _RETENTION.fullmatch(self.retention)
        if match is None:  # unreachable: validated on construction
            raise ValueError(f"retention {self.retention!r} is not an ISO 8601 period")
        years, months, days = (int(g or 0) for g in match.groups())
        return years * 365 + months * 30 + days
