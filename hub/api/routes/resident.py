"""Residents: who accessed my data (time, agency, purpose — not the officer), and my consents.

Accesses under a covert case stay hidden until the case closes or its disclosure date passes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError

from audit.entries import Actor
from hub.api.auth import hub_of, resident
from hub.api.identity import Resident
from hub.api.models import AccessesOut, AccessOut, ConsentOut, WithdrawIn
from hub.api.routes.admin import consent_out
from hub.api.routes.common import problems
from hub.release import ServiceUnavailable

router = APIRouter(prefix="/v1/me", tags=["residents"])
MINE = problems(400, 401, 422, 503)
Me = Annotated[Resident, Depends(resident)]


@router.get("/accesses", summary="Who accessed my data: time, agency and purpose of every access", responses=MINE)
async def accesses(request: Request, me: Me) -> AccessesOut:
    hub = hub_of(request)
    subject = hub.evidence.pseudonym(me.id_number)

    try:
        rows = await asyncio.to_thread(hub.accesses.rows, subject)  # read on to the log's end first
    except SQLAlchemyError:
        raise ServiceUnavailable("audit") from None  # an index behind the log would hide accesses
    hidden = await asyncio.to_thread(hub.cases.hidden_cases, {r.case_id for r in rows if r.case_id})
    grouped: dict[tuple[int, str, str, str, str, bool], int] = {}
    for r in rows:
        if r.case_id not in hidden:
            group = (r.at, r.agency, r.purpose, r.dataset, r.result, r.break_glass)
            grouped[group] = grouped.get(group, 0) + r.records
    return AccessesOut(
        accesses=[
            AccessOut(time=t, agency=a, purpose=p, dataset=d, result=res, emergency=e, records=n)
            for (t, a, p, d, res, e), n in grouped.items()
        ],
        withheld_note="accesses for covert investigations are shown once the case closes or its disclosure date passes",
    )


@router.get("/consents", summary="My consents, current and past", responses=MINE)
async def consents(request: Request, me: Me) -> list[ConsentOut]:
    hub = hub_of(request)
    subject = hub.evidence.pseudonym(me.id_number)
    return [consent_out(e) for e in await asyncio.to_thread(hub.policy.consents.history, subject)]


@router.post(
    "/consents/withdraw", summary="Withdraw a consent (as easy as giving it; effective at once)", responses=MINE
)
async def withdraw(body: WithdrawIn, request: Request, me: Me) -> ConsentOut:
    hub = hub_of(request)
    subject = hub.evidence.pseudonym(me.id_number)
    actor = Actor(agency="resident", principal=f"resident:{me.subject}"[:128], role="data_subject")
    await asyncio.to_thread(hub.policy.agreements.get, body.agreement_id)
    event = await asyncio.to_thread(hub.policy.consents.withdraw, subject, body.agreement_id, body.type, "app", actor)
    return consent_out(event)
