"""Officers: the person view ("one map"), policy-gated per record and per field."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hub.api.auth import hub_of, officer, require
from hub.api.identity import Officer
from hub.api.models import PersonViewIn, ReleaseOut
from hub.api.problems import request_id_of
from hub.api.routes.common import problems, release_json
from hub.release import Query
from policies.decide import PrincipalContext

router = APIRouter(prefix="/v1/officer", tags=["officers"])


@router.post(
    "/person-view",
    summary="Every record about a resident that policy lets this officer see, field by field",
    description=(
        "Each record is decided separately (agreement, purpose, case assignment, jurisdiction, consent, "
        "emergency); each field comes back revealed, masked or absent with the reason. Sensitive fields "
        "need a multi-factor token: without one they are masked and `step_up.required` is true. "
        "The decisions and the release are in the audit log before this answer is sent."
    ),
    response_model=ReleaseOut,
    responses=problems(400, 401, 403, 422, 503),
)
async def person_view(body: PersonViewIn, request: Request, who: Annotated[Officer, Depends(officer)]) -> Response:
    hub = hub_of(request)
    role = require(hub, who, "records", "read")
    principal = PrincipalContext(who.id, who.agency, role, who.jurisdiction, who.training_valid, who.mfa)
    query = Query(
        principal=principal,
        id_number=body.id_number,
        purpose=body.purpose,
        case_id=body.case_id,
        emergency_reason=body.emergency.reason if body.emergency else None,
        request_id=request_id_of(request),
    )
    release = await hub.release.release(query)
    return release_json(release, hub.settings.oidc_mfa_acr[:1])
