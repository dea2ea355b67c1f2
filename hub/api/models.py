"""Request and response bodies of the API (pydantic), with the examples OpenAPI shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ID_NUMBER = Field(
    pattern=r"^\d{17}[\dXx]$",
    description="the resident's ID number (GB 11643); sent in the body, never in a URL",
    examples=["110105194912310025"],
)
PURPOSE = Field(pattern=r"^[a-z_]{3,40}$", description="declared purpose code", examples=["fraud_investigation"])
CASE_ID = Field(default=None, pattern=r"^CASE-\d{4}-\d{4,8}$", examples=["CASE-2026-0417"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmergencyIn(_Body):
    reason: str = Field(min_length=10, max_length=500, examples=["resident with dementia missing since 06:00"])


class PersonViewIn(_Body):
    id_number: str = ID_NUMBER
    purpose: str = PURPOSE
    case_id: str | None = CASE_ID
    emergency: EmergencyIn | None = None


class FieldOut(BaseModel):
    outcome: Literal["reveal", "mask", "deny"]
    value: Any = None
    reason: str | None = None


class RecordOut(BaseModel):
    dataset: str
    record_key: str
    owner: str
    version: int
    allow: bool
    policy: str
    reasons: list[str]
    obligations: list[str]
    fields: dict[str, FieldOut]


class StepUp(BaseModel):
    required: bool
    acr_values: list[str] = []


class RefusalOut(BaseModel):
    dataset: str
    reasons: list[str]
    records: int = Field(description="how many of the dataset's records were refused for these reasons")


class ReleaseOut(BaseModel):
    subject: str = Field(description="the resident's audit pseudonym (keyed HMAC), not the ID number")
    records: list[RecordOut]
    refused: int = Field(description="records that exist but policy did not release")
    refusals: list[RefusalOut] = Field(description="why, per dataset and reasons, with a count (no record data)")
    step_up: StepUp
    review_task: int | None = None
    audit: dict[str, Any] = Field(description="the release's audit entry (seq) and the digest of what was released")


class PartnerQueryIn(_Body):
    id_number: str = ID_NUMBER
    purpose: str = PURPOSE
    datasets: list[str] | None = Field(default=None, max_length=20, examples=[["civil_affairs.vulnerable_person"]])
    case_id: str | None = CASE_ID


class SharingRequestIn(_Body):
    provider: str = Field(max_length=64, examples=["civil_affairs"])
    dataset: str = Field(max_length=128, examples=["civil_affairs.vulnerable_person"])
    fields: list[str] = Field(min_length=1, max_length=100, examples=[["person_no", "category", "community"]])
    purposes: list[str] = Field(min_length=1, max_length=20, examples=[["welfare_check"]])
    lawful_basis: Literal["consent", "statutory_duty", "emergency"]
    legal_citation: str = Field(default="", max_length=500)
    necessity: str = Field(default="", max_length=1000)
    conditions: str = Field(default="", max_length=1000)
    valid_from: int = Field(ge=0, le=2**40)
    valid_until: int = Field(ge=0, le=2**40)


class AgreementOut(BaseModel):
    id: str
    provider: str
    consumer: str
    dataset: str
    fields: list[str]
    purposes: list[str]
    lawful_basis: str
    legal_citation: str
    status: str
    valid_from: int
    valid_until: int
    scope_version: int
    requester: str
    approvers: list[str]
    rejection_reason: str
    decisions: int
    records_released: int


class FeedOut(BaseModel):
    dataset: str
    records: list[RecordOut]
    refused: int
    next_cursor: str | None
    audit: dict[str, Any]


class PushIn(_Body):
    records: list[dict[str, Any]] = Field(min_length=1, max_length=500)


class PushOut(BaseModel):
    accepted: int
    dead_letters: list[dict[str, str]]


class AccessOut(BaseModel):
    time: int
    agency: str
    purpose: str
    dataset: str
    result: Literal["permit", "deny"]
    emergency: bool
    records: int = Field(description="how many of the resident's records this access concerned")


class AccessesOut(BaseModel):
    accesses: list[AccessOut]
    withheld_note: str


class ConsentOut(BaseModel):
    agreement: str
    type: str
    status: str
    purposes: list[str]
    scope_version: int
    at: int


class WithdrawIn(_Body):
    agreement_id: str = Field(max_length=64)
    type: Literal["general", "separate_sensitive", "separate_provision", "guardian"]


class CounterConsentIn(_Body):
    id_number: str = ID_NUMBER
    agreement_id: str = Field(max_length=64)
    type: Literal["general", "separate_sensitive", "separate_provision", "guardian"]
    purposes: list[str] = Field(min_length=1, max_length=20)
    notice_text: str = Field(min_length=1, max_length=20000)


class KeyIn(_Body):
    key_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{3,128}$", examples=["civil_affairs-2026-1"])
    public_key: str = Field(description="raw Ed25519 public key, base64", max_length=64)
    valid_from: int = Field(ge=0, le=2**40)
    valid_until: int = Field(ge=0, le=2**40)


class KeyOut(BaseModel):
    key_id: str
    agency: str
    valid_from: int
    valid_until: int
    revoked_at: int | None


class ReasonIn(_Body):
    reason: str = Field(default="", max_length=1000)


class RoleIn(_Body):
    principal: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    role: str = Field(max_length=32)


class CaseIn(_Body):
    case_id: str = Field(pattern=r"^CASE-\d{4}-\d{4,8}$")
    covert: bool = False
    disclose_after: int | None = Field(default=None, ge=0, le=2**40)


class AssignIn(_Body):
    principal: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")


class ReviewCloseIn(_Body):
    outcome: Literal["justified", "unjustified"]
    note: str = Field(min_length=1, max_length=2000)


class Done(BaseModel):
    ok: bool = True
    detail: str = ""
