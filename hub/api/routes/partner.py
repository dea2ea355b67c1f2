"""Partner agencies' systems: every call signed (RFC 9421), every answer signed by the hub.

The acting agency is the signing key's agency. Reads go through the same policy and release path as
officers' (as the agency's ``partner_service``), under an active agreement; pushes go through the
connectors' validation and dead letters.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from connectors.bus.select import open_bus
from connectors.push import push_records
from hub.api.auth import Forbidden, hub_of, partner, partner_principal
from hub.api.models import (
    AgreementOut,
    FeedOut,
    PartnerQueryIn,
    PushIn,
    PushOut,
    RecordOut,
    ReleaseOut,
    SharingRequestIn,
)
from hub.api.partner_keys import PartnerKey
from hub.api.problems import request_id_of
from hub.api.routes.admin import agreement_answer, request_agreement_from
from hub.api.routes.common import problems, record_json, release_json
from hub.errors import HubError
from hub.release import Query as ReleaseQuery
from policies.agreements import Principal

router = APIRouter(prefix="/v1/partner", tags=["partner agencies"])
SIGNED = problems(400, 401, 403, 404, 422, 503)


class BadCursor(HubError):
    """The feed cursor is not one this hub issued."""


def _encode_cursor(position: tuple[datetime, int]) -> str:
    return base64.urlsafe_b64encode(f"{position[0].isoformat()}|{position[1]}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, row_id = text.split("|")
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("the cursor is not valid; start again without one") from None


@router.post(
    "/sharing-requests",
    status_code=201,
    summary="Request a sharing agreement (the provider's agency admin approves or rejects it)",
    responses=problems(400, 401, 403, 409, 422, 503),
)
async def sharing_request(
    body: SharingRequestIn, request: Request, key: Annotated[PartnerKey, Depends(partner)]
) -> AgreementOut:
    hub = hub_of(request)
    requester = Principal(f"svc:{key.agency}", key.agency, "partner_service")
    row = await asyncio.to_thread(request_agreement_from, hub, requester, body)
    return await asyncio.to_thread(agreement_answer, hub, row)


@router.post(
    "/records/query",
    summary="A resident's records under an active agreement, found through the blind index of their ID number",
    response_model=ReleaseOut,
    responses=SIGNED,
)
async def query_records(
    body: PartnerQueryIn, request: Request, key: Annotated[PartnerKey, Depends(partner)]
) -> Response:
    hub = hub_of(request)
    for dataset in body.datasets or []:
        hub.catalog.dataset(dataset)
    query = ReleaseQuery(
        principal=partner_principal(key, hub),
        id_number=body.id_number,
        purpose=body.purpose,
        case_id=body.case_id,
        datasets=tuple(body.datasets) if body.datasets else None,
        request_id=request_id_of(request),
        channel="partner",
    )
    release = await hub.release.release(query)
    return release_json(release, [])


@router.get(
    "/datasets/{dataset}/feed",
    summary="An incremental feed of a dataset since a cursor, each record decided by policy",
    responses=SIGNED,
)
async def feed(
    dataset: str,
    request: Request,
    key: Annotated[PartnerKey, Depends(partner)],
    purpose: Annotated[str, Query(pattern=r"^[a-z_]{3,40}$")],
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> FeedOut:
    hub = hub_of(request)
    hub.catalog.dataset(dataset)
    after = _decode_cursor(cursor) if cursor else None
    records, position = await asyncio.to_thread(hub.store.feed, dataset, after, limit)
    query = ReleaseQuery(
        principal=partner_principal(key, hub),
        id_number="",
        purpose=purpose,
        request_id=request_id_of(request),
        channel="partner-feed",
    )
    prepared, decided = await hub.release.run(hub.release.prepare_feed, query, records)
    release = await hub.release.commit(prepared, query, decided)
    return FeedOut(
        dataset=dataset,
        records=[RecordOut.model_validate(record_json(v)) for v in release.records],
        refused=release.refused,
        next_cursor=_encode_cursor(position) if position else cursor,
        audit={"release_seq": release.release_seq, "payload_digest": release.payload_digest},
    )


@router.post(
    "/datasets/{dataset}/records",
    summary="Push records of the agency's own dataset (validated, protected, dead-lettered like a pull)",
    responses=SIGNED,
)
async def push(dataset: str, body: PushIn, request: Request, key: Annotated[PartnerKey, Depends(partner)]) -> PushOut:
    hub = hub_of(request)
    definition = hub.catalog.dataset(dataset)
    if definition.owner != key.agency:
        raise Forbidden(f"{key.agency} may push only its own datasets; {dataset} belongs to {definition.owner}")
    if not hub.policy.roles.check(f"svc:{key.agency}", key.agency, "records", "push"):
        raise Forbidden(f"svc:{key.agency} holds no role that may push records")

    def run() -> tuple[int, list[dict[str, str]]]:
        bus = open_bus(hub.settings)
        try:
            report, letters = push_records(
                hub.catalog,
                hub.protector,
                bus,
                hub.store.engine,
                dataset,
                f"partner-push:{key.key_id}",
                # Named by the signed request's key and nonce, which the hub takes once: a push's rows and
                # dead letters are its own even when a partner sends the same X-Request-Id twice.
                f"push:{key.key_id}/{request.state.partner_nonce}",
                body.records,
            )
        finally:
            bus.close()
        return report.published, letters

    accepted, letters = await asyncio.to_thread(run)
    return PushOut(accepted=accepted, dead_letters=letters)
