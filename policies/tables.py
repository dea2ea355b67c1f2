"""Store tables of the policies package: Casbin rules, sharing agreements and their history, consents.

They live in the hub's database (SQLite or PostgreSQL) through SQLModel's shared metadata, so
``hub.store.init_schema`` creates them with the rest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class CasbinRule(SQLModel, table=True):
    __tablename__ = "casbin_rule"

    id: int | None = Field(default=None, primary_key=True)
    ptype: str = Field(max_length=8, index=True)
    v0: str = Field(default="", max_length=128)
    v1: str = Field(default="", max_length=128)
    v2: str = Field(default="", max_length=128)
    v3: str = Field(default="", max_length=128)
    v4: str = Field(default="", max_length=128)
    v5: str = Field(default="", max_length=128)


class PolicyVersion(SQLModel, table=True):
    """Bumped on every role change, so other processes know to reload."""

    __tablename__ = "policy_version"

    name: str = Field(primary_key=True, max_length=32)
    version: int = 0


class AgreementRow(SQLModel, table=True):
    __tablename__ = "sharing_agreement"

    id: str = Field(primary_key=True, max_length=64)
    provider: str = Field(max_length=64, index=True)
    consumer: str = Field(max_length=64, index=True)
    dataset: str = Field(max_length=128, index=True)
    fields: list[str] = Field(sa_column=Column(JSON, nullable=False))
    purposes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    lawful_basis: str = Field(max_length=32)
    legal_citation: str = ""
    necessity: str = ""
    conditions: str = ""
    valid_from: int  # epoch seconds, UTC
    valid_until: int
    status: str = Field(max_length=16, index=True)
    scope_version: int = 1
    requester: str = Field(max_length=128)
    approvers: list[str] = Field(sa_column=Column(JSON, nullable=False))
    rejection_reason: str = ""
    # Use counts from before they moved to ``agreement_use`` (kept with the audit log): an agreement's uses are
    # these plus that table's, which is what AgreementService.use_counts reports. New uses never come here.
    decisions: int = 0
    records_released: int = 0


class AgreementUseRow(SQLModel, table=True):
    """An agreement's uses (decisions it allowed, records released under it), kept in the audit log's database.

    Counted in the audit log's own transaction, as the effect of each release's entry (see
    AgreementService.uses), so the counters move exactly when the evidence of a release is durable; hence
    this table lives where the log does (hub.settings.Settings.effective_audit_database_url), not with the
    agreement it counts.
    """

    __tablename__ = "agreement_use"

    agreement: str = Field(primary_key=True, max_length=64)
    decisions: int = 0
    records_released: int = 0


class AgreementEvent(SQLModel, table=True):
    __tablename__ = "agreement_event"

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: str = Field(max_length=64, index=True)
    from_status: str = Field(max_length=16)
    to_status: str = Field(max_length=16)
    actor: str = Field(max_length=128)
    reason: str = ""
    at: int
    detail: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ConsentEvent(SQLModel, table=True):
    """One grant or withdrawal. The current state of a consent is its latest event."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=64, index=True, description="keyed pseudonym of the resident")
    agreement_id: str = Field(max_length=64, index=True)
    type: str = Field(max_length=32)
    action: str = Field(max_length=16)  # grant | withdraw
    purposes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    scope_version: int
    notice_hash: str = Field(max_length=80)
    channel: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    at: int


class CaseFile(SQLModel, table=True):
    """An investigation case: who is assigned, whether it is covert, and when its accesses are disclosed."""

    __tablename__ = "case_file"

    id: str = Field(primary_key=True, max_length=32)
    agency: str = Field(max_length=64, index=True)
    covert: bool = False
    disclose_after: int | None = None  # epoch seconds; covert accesses are shown to residents from then
    opened_by: str = Field(max_length=128)
    opened_at: int
    closed_at: int | None = None
    closed_by: str = ""


class CaseAssignment(SQLModel, table=True):
    __tablename__ = "case_assignment"

    case_id: str = Field(primary_key=True, max_length=32)
    principal: str = Field(primary_key=True, max_length=128)
    assigned_by: str = Field(max_length=128)
    assigned_at: int


class ReviewTask(SQLModel, table=True):
    """A post-hoc review of a break-glass access; open until a second person closes it."""

    __tablename__ = "review_task"

    id: int | None = Field(default=None, primary_key=True)
    agency: str = Field(max_length=64, index=True)
    requester: str = Field(max_length=128)
    purpose: str = Field(max_length=64)
    reason: str
    decision_seq: int | None = None  # the audit entry of the break-glass decision
    request_id: str = Field(default="", max_length=64)
    opened_at: int
    closed_at: int | None = None
    closed_by: str = ""
    outcome: str = Field(default="", max_length=16)  # justified | unjustified
    note: str = ""
