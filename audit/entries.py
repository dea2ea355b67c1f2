"""Audit entries: one RFC 8785 canonical JSON object each, so the stored bytes are the leaf bytes.

An entry never holds personal information in clear: the subject is a keyed HMAC pseudonym (from
keys/), field lists name fields, not values, and released data appears only as a digest.

Canonical bytes come from pydantic's own (Rust) JSON serializer: every model declares its fields in
sorted order, ``detail`` is sorted on validation and the entry's top level is sorted by a serializer,
so keys come out in RFC 8785 order, and its string escapes are RFC 8785's. For the values this schema
admits — ASCII keys, strings, booleans and integers within ±2**53, no floats — the output is byte for
byte RFC 8785 at a small fraction of a general encoder's cost; a property test holds it to the
``rfc8785`` reference encoder, and :func:`canonical_json` is the plain reference path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

EntryType = Literal[
    "access.decision",
    "data.release",
    "consent.change",
    "agreement.change",
    "key.op",
    "auth.failure",
    "admin",
]


_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_SAFE_INTEGER = 2**53


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes for the JSON values entries and released payloads hold: objects with ASCII keys,
    strings, booleans, null and integers within ±2**53, no floats (the bounds of the module docstring).

    orjson with sorted keys writes exactly RFC 8785 for that domain (no white space, UTF-8, the same
    escapes; ASCII keys sort the same by code point as by UTF-16 unit), at a fraction of the standard
    library's cost: a release digests every record it hands out. A property test holds it to ``rfc8785``.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Field order matters below: it is the serialization order, and it must be sorted (RFC 8785).


class Actor(_Frozen):
    agency: str
    principal: str = Field(description="principal id (officer number, service name), not a person's name")
    role: str


class Decision(_Frozen):
    obligations: tuple[str, ...] = ()
    policy: str
    reasons: tuple[str, ...] = ()
    result: Literal["permit", "deny"]


_PSEUDONYM = r"^[0-9a-f]{64}$"


class QueryDecision(_Frozen):
    """One of a query's decisions, inside the query's ``data.release`` entry: the records of one dataset
    (and jurisdiction) about one subject, decided together.

    A query's decisions and its release are one entry, one leaf: they are taken and recorded together, so
    one inclusion proof shows both, and neither can appear in the log without the other. An entry a
    decision also cost the sequencer about 40 µs of the person view's ~1 ms (sealing, hashing, inserting).
    """

    dataset: str
    fields_released: tuple[str, ...] = ()
    obligations: tuple[str, ...] = ()
    policy: str
    reasons: tuple[str, ...] = ()
    records: int = Field(ge=0, lt=2**53)
    result: Literal["permit", "deny"]
    subject: str | None = Field(default=None, pattern=_PSEUDONYM, description="keyed pseudonym (hex)")


class EntryDraft(_Frozen):
    """What a caller submits; the sequencer adds the sequence number and time."""

    actor: Actor
    case: str | None = None
    dataset: str | None = None
    decision: Decision | None = None
    decisions: tuple[QueryDecision, ...] | None = None  # a query's decisions, in its data.release entry
    detail: dict[str, str | int | bool] = Field(default_factory=dict)
    fields_released: tuple[str, ...] = ()
    lawful_basis: str | None = None
    payload_digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    purpose: str | None = None
    request_id: str | None = None
    subject: str | None = Field(default=None, pattern=_PSEUDONYM, description="keyed pseudonym (hex)")
    type: EntryType

    @field_validator("detail")
    @classmethod
    def _detail_is_canonical(cls, value: dict[str, str | int | bool]) -> dict[str, str | int | bool]:
        # The offline verifier finds "seq": in the canonical bytes; only the top level may have it.
        if {"seq", "time"} & set(value):
            raise ValueError("detail may not use the reserved keys 'seq' or 'time'")
        for key, item in value.items():
            if not _DETAIL_KEY.match(key):
                raise ValueError("detail keys are lower-case ASCII identifiers")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _SAFE_INTEGER:
                raise ValueError("detail integers must lie within +-2**53 (RFC 8785 / I-JSON)")
        return dict(sorted(value.items()))


class Entry(EntryDraft):
    seq: int
    time: str

    @model_serializer(mode="wrap")
    def _sorted(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # seq and time are declared after the draft's fields; put them in their sorted places.
        return dict(sorted(handler(self).items()))

    def canonical(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """A sequenced entry: its number, time and the exact leaf bytes stored."""

    seq: int
    time: str
    body: bytes

    def entry(self) -> Entry:
        return Entry.model_validate_json(self.body)


def utc_stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A draft serialized up to its number and time: what sealing it costs, paid before it is numbered.

    The draft serializes with sorted keys and ends with ``"subject":…`` (if any) and ``"type":…``, both
    values fixed-form (64 hex digits; a literal), so that tail is rebuilt exactly and checked; ``seq`` goes
    before it and ``time`` between subject and type, their sorted places. The audit log prepares a batch's
    drafts before it takes the writers' lock and only numbers them under it."""

    head: str
    subject: str
    type: str

    def seal(self, seq: int, stamp: str) -> SealedEntry:
        body = f'{self.head}"seq":{seq},{self.subject}"time":"{stamp}","type":"{self.type}"}}'
        return SealedEntry(seq, stamp, body.encode())


def prepare_entry(draft: EntryDraft) -> PreparedEntry:
    """Serialize a validated draft for :meth:`PreparedEntry.seal` (no second validation)."""
    body = draft.model_dump_json(exclude_none=True)
    subject = f'"subject":"{draft.subject}",' if draft.subject is not None else ""
    tail = f'{subject}"type":"{draft.type}"}}'
    if not body.endswith("," + tail):
        raise ValueError("entry draft did not serialize in canonical order")  # a model edit broke the order
    return PreparedEntry(body[: -len(tail)], subject, draft.type)


def seal_entry(draft: EntryDraft, seq: int, when: datetime | str | None = None) -> SealedEntry:
    """Number and time-stamp a validated draft, producing its canonical bytes (see :class:`PreparedEntry`)."""
    return prepare_entry(draft).seal(seq, when if isinstance(when, str) else utc_stamp(when))
