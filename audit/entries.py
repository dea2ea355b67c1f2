"""Audit entries: one RFC 8785 canonical JSON object each, so the stored bytes are the leaf bytes.

An entry never holds personal information in clear: the subject is a keyed HMAC pseudonym (from
keys/), field lists name fields, not values, and released data appears only as a digest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, field_validator

EntryType = Literal[
    "access.decision",
    "data.release",
    "consent.change",
    "agreement.change",
    "key.op",
    "auth.failure",
    "admin",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actor(_Frozen):
    agency: str
    principal: str = Field(description="principal id (officer number, service name), not a person's name")
    role: str


class Decision(_Frozen):
    result: Literal["permit", "deny"]
    policy: str
    reasons: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()


class EntryDraft(_Frozen):
    """What a caller submits; the sequencer adds the sequence number and time."""

    type: EntryType
    actor: Actor
    purpose: str | None = None
    case: str | None = None
    lawful_basis: str | None = None
    dataset: str | None = None
    subject: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="keyed pseudonym (hex)")
    decision: Decision | None = None
    request_id: str | None = None
    fields_released: tuple[str, ...] = ()
    payload_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    detail: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("detail")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        # The offline verifier finds "seq": by pattern in the canonical bytes; only the top level may have it.
        if {"seq", "time"} & set(value):
            raise ValueError("detail may not use the reserved keys 'seq' or 'time'")
        return value


class Entry(EntryDraft):
    seq: int
    time: str

    def canonical(self) -> bytes:
        return rfc8785.dumps(self.model_dump(mode="json", exclude_none=True))


def seal_entry(draft: EntryDraft, seq: int, when: datetime | None = None) -> Entry:
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return Entry(**draft.model_dump(), seq=seq, time=moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
