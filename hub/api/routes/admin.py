"""Agency admins (separated from auditors by Casbin's separation of duties): keys, agreements, roles, consents, cases.

Every change is recorded in the audit log by the service that makes it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam

from audit.entries import Actor
from hub.api.auth import Forbidden, hub_of, officer, require
from hub.api.identity import Officer
from hub.api.models import (
    AgreementOut,
    AssignIn,
    CaseIn,
    ConsentOut,
    CounterConsentIn,
    Done,
    KeyIn,
    KeyOut,
    ReasonIn,
    ReviewCloseIn,
    RoleIn,
    SharingRequestIn,
)
from hub.api.partner_keys import KeyRegistryError
from hub.api.routes.common import problems
from hub.api.runtime import HubRuntime
from hub.identifiers import normalise_id_number
from hub.store.tables import AgencyKeyRow
from policies.agreements import Principal
from policies.tables import AgreementRow, ConsentEvent

router = APIRouter(prefix="/v1/admin", tags=["agency admins"])
ADMIN = problems(400, 401, 403, 404, 409, 422, 503)


def agreement_out(row: AgreementRow, uses: Mapping[str, tuple[int, int]]) -> AgreementOut:
    """``row`` as the API shows it, with its use counts from ``uses`` (AgreementService.use_counts)."""
    decisions, records_released = uses.get(row.id, (0, 0))
    return AgreementOut(
        id=row.id,
        provider=row.provider,
        consumer=row.consumer,
        dataset=row.dataset,
        fields=list(row.fields),
        purposes=list(row.purposes),
        lawful_basis=row.lawful_basis,
        legal_citation=row.legal_citation,
        status=row.status,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        scope_version=row.scope_version,
        requester=row.requester,
        approvers=list(row.approvers),
        rejection_reason=row.rejection_reason,
        decisions=decisions,
        records_released=records_released,
    )


def agreement_answer(hub: HubRuntime, row: AgreementRow) -> AgreementOut:
    """One agreement with its use counts (a blocking read: call it in a worker thread)."""
    return agreement_out(row, hub.policy.agreements.use_counts([row.id]))


def request_agreement_from(hub: HubRuntime, requester: Principal, body: SharingRequestIn) -> AgreementRow:
    """Admins (consumer side) and partner systems request agreements through the same service call."""
    return hub.policy.agreements.request(
        requester,
        provider=body.provider,
        dataset=body.dataset,
        fields=body.fields,
        purposes=body.purposes,
        lawful_basis=body.lawful_basis,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        legal_citation=body.legal_citation,
        necessity=body.necessity,
        conditions=body.conditions,
    )


def key_out(row: AgencyKeyRow) -> KeyOut:
    return KeyOut(
        key_id=row.key_id,
        agency=row.agency,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        revoked_at=row.revoked_at,
    )


def consent_out(event: ConsentEvent) -> ConsentOut:
    return ConsentOut(
        agreement=event.agreement_id,
        type=event.type,
        status="granted" if event.action == "grant" else "withdrawn",
        purposes=list(event.purposes),
        scope_version=event.scope_version,
        at=event.at,
    )


def _admin(request: Request, who: Officer, obj: str = "roles", act: str = "admin") -> tuple[Actor, Principal]:
    role = require(hub_of(request), who, obj, act)
    return Actor(agency=who.agency, principal=who.id, role=role), Principal(who.id, who.agency, role)


Admin = Annotated[Officer, Depends(officer)]


@router.get("/keys", summary="The agency's registered request-signing keys", responses=ADMIN)
async def list_keys(request: Request, who: Admin) -> list[KeyOut]:
    _admin(request, who)
    return [key_out(r) for r in await asyncio.to_thread(hub_of(request).partner_keys.list, who.agency)]


@router.post("/keys", status_code=201, summary="Register a request-signing key for the agency", responses=ADMIN)
async def register_key(body: KeyIn, request: Request, who: Admin) -> KeyOut:
    actor, _ = _admin(request, who)
    hub = hub_of(request)
    try:
        raw = base64.b64decode(body.public_key, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise KeyRegistryError("public_key is not base64") from None

    def register() -> AgencyKeyRow:
        row = hub.partner_keys.register(who.agency, body.key_id, raw, body.valid_from, body.valid_until, actor)
        service = f"svc:{who.agency}"
        if ("partner_service", who.agency) not in hub.policy.roles.roles_of(service):
            hub.policy.roles.assign(service, "partner_service", who.agency)
        return row

    return key_out(await asyncio.to_thread(register))


@router.post("/keys/{key_id}/revoke", summary="Revoke a signing key at once", responses=ADMIN)
async def revoke_key(key_id: str, body: ReasonIn, request: Request, who: Admin) -> KeyOut:
    actor, _ = _admin(request, who)
    row = await asyncio.to_thread(hub_of(request).partner_keys.revoke, key_id, body.reason, actor)
    return key_out(row)


@router.post("/roles", summary="Give a principal a role in the agency (separation of duties applies)", responses=ADMIN)
async def assign_role(body: RoleIn, request: Request, who: Admin) -> Done:
    _admin(request, who)
    await asyncio.to_thread(hub_of(request).policy.roles.assign, body.principal, body.role, who.agency)
    return Done(detail=f"{body.principal} is {body.role} in {who.agency}")


@router.post("/agreements", status_code=201, summary="Request an agreement as the consumer agency", responses=ADMIN)
async def request_agreement(body: SharingRequestIn, request: Request, who: Admin) -> AgreementOut:
    _, principal = _admin(request, who, "agreements", "request")
    hub = hub_of(request)
    row = await asyncio.to_thread(request_agreement_from, hub, principal, body)
    return await asyncio.to_thread(agreement_answer, hub, row)


@router.get("/agreements", summary="Agreements the agency provides or consumes", responses=ADMIN)
async def list_agreements(request: Request, who: Admin) -> list[AgreementOut]:
    _admin(request, who, "agreements", "request")
    from sqlmodel import Session, or_, select

    def rows() -> list[AgreementOut]:
        hub = hub_of(request)
        with Session(hub.store.engine) as session:
            query = select(AgreementRow).where(
                or_(AgreementRow.provider == who.agency, AgreementRow.consumer == who.agency)
            )
            found = list(session.exec(query.order_by(AgreementRow.id)).all())
        uses = hub.policy.agreements.use_counts([r.id for r in found])
        return [agreement_out(r, uses) for r in found]

    return await asyncio.to_thread(rows)


@router.post(
    "/agreements/{agreement_id}/{action}",
    summary="Move an agreement: approve, reject (reason required), activate, pause, resume or revoke",
    responses=ADMIN,
)
async def move_agreement(
    agreement_id: str,
    action: Literal["approve", "reject", "activate", "pause", "resume", "revoke"],
    body: ReasonIn,
    request: Request,
    who: Admin,
) -> AgreementOut:
    _, principal = _admin(request, who, "agreements", "approve")
    service = hub_of(request).policy.agreements
    moves = {
        "approve": lambda: service.approve(agreement_id, principal),
        "reject": lambda: service.reject(agreement_id, principal, body.reason),
        "activate": lambda: service.activate(agreement_id, principal),
        "pause": lambda: service.pause(agreement_id, principal, body.reason),
        "resume": lambda: service.resume(agreement_id, principal),
        "revoke": lambda: service.revoke(agreement_id, principal, body.reason),
    }
    row = await asyncio.to_thread(moves[action])
    return await asyncio.to_thread(agreement_answer, hub_of(request), row)


@router.post("/consents", status_code=201, summary="Record a resident's consent given at a counter", responses=ADMIN)
async def counter_consent(body: CounterConsentIn, request: Request, who: Admin) -> ConsentOut:
    actor, _ = _admin(request, who, "consents", "record")
    hub = hub_of(request)
    agreement = await asyncio.to_thread(hub.policy.agreements.get, body.agreement_id)
    if who.agency not in (agreement.provider, agreement.consumer):
        raise Forbidden(f"{who.agency} is not a party to agreement {agreement.id}")
    subject = hub.evidence.pseudonym(normalise_id_number(body.id_number))
    event = await asyncio.to_thread(
        hub.policy.consents.grant,
        subject,
        agreement.id,
        body.type,
        body.purposes,
        agreement.scope_version,
        body.notice_text,
        "counter",
        actor,
    )
    return consent_out(event)


@router.post("/cases", status_code=201, summary="Open an investigation case (optionally covert)", responses=ADMIN)
async def open_case(body: CaseIn, request: Request, who: Admin) -> Done:
    actor, _ = _admin(request, who)
    await asyncio.to_thread(
        hub_of(request).cases.open,
        body.case_id,
        who.agency,
        actor,
        covert=body.covert,
        disclose_after=body.disclose_after,
    )
    return Done(detail=f"case {body.case_id} opened")


@router.post("/cases/{case_id}/assign", summary="Assign an officer to a case", responses=ADMIN)
async def assign_case(case_id: str, body: AssignIn, request: Request, who: Admin) -> Done:
    actor, _ = _admin(request, who)
    hub = hub_of(request)
    case = await asyncio.to_thread(hub.cases.get, case_id)
    if case.agency != who.agency:
        raise Forbidden(f"case {case_id} belongs to another agency")
    await asyncio.to_thread(hub.cases.assign, case_id, body.principal, actor)
    return Done(detail=f"{body.principal} assigned to {case_id}")


@router.post("/cases/{case_id}/close", summary="Close a case (its covert accesses become visible)", responses=ADMIN)
async def close_case(case_id: str, request: Request, who: Admin) -> Done:
    actor, _ = _admin(request, who)
    hub = hub_of(request)
    case = await asyncio.to_thread(hub.cases.get, case_id)
    if case.agency != who.agency:
        raise Forbidden(f"case {case_id} belongs to another agency")
    await asyncio.to_thread(hub.cases.close, case_id, actor)
    return Done(detail=f"case {case_id} closed")


@router.post(
    "/reviews/{task_id}/close",
    summary="Close a break-glass review (a second person with the emergency-review permission)",
    responses=ADMIN,
)
async def close_review(
    task_id: Annotated[int, PathParam(ge=1, le=2**53)], body: ReviewCloseIn, request: Request, who: Admin
) -> Done:
    actor, _ = _admin(request, who, "emergency", "review")
    await asyncio.to_thread(hub_of(request).reviews.close, task_id, actor, body.outcome, body.note)
    return Done(detail=f"review {task_id} closed as {body.outcome}")
