"""Auditors: read-only evidence — checkpoint, proofs, export bundles and the evidence pack. Their reads are audited."""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from audit.entries import Actor, EntryDraft
from audit.export import EntryFilter
from hub.api.auth import hub_of, officer, require
from hub.api.identity import Officer
from hub.api.routes.admin import agreement_out
from hub.api.routes.common import problems
from hub.errors import HubError
from policies.tables import AgreementEvent, ConsentEvent

router = APIRouter(prefix="/v1/audit", tags=["auditors"])
AUDIT = problems(400, 401, 403, 422, 503)
Auditor = Annotated[Officer, Depends(officer)]


class BadRange(HubError):
    """A proof or export range is outside the log."""


async def _audited(request: Request, who: Officer, operation: str, act: str = "read", **detail: str | int) -> None:
    hub = hub_of(request)
    role = require(hub, who, "audit", act)
    await hub.evidence.log.append_async(
        EntryDraft(
            type="admin",
            actor=Actor(agency=who.agency, principal=who.id, role=role),
            detail={"operation": operation, **detail},
        )
    )


@router.get("/checkpoint", summary="The log's current signed checkpoint (C2SP signed note)", responses=AUDIT)
async def checkpoint(request: Request, who: Auditor) -> dict[str, Any]:
    await _audited(request, who, "audit.checkpoint")
    hub = hub_of(request)
    current = await asyncio.to_thread(hub.evidence.current_checkpoint)
    return {**current, "verifier_keys": hub.evidence.verifier_keys()}


@router.get("/proofs/inclusion", summary="RFC 9162 inclusion proof of one entry", responses=AUDIT)
async def inclusion(
    request: Request,
    who: Auditor,
    seq: Annotated[int, Query(ge=0, le=2**53)],
    size: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> dict[str, Any]:
    hub = hub_of(request)
    current = hub.evidence.log.size
    if seq >= current or (size is not None and not seq < size <= current):
        raise BadRange(f"entry {seq} / tree size {size} is outside the log (size {current})")
    await _audited(request, who, "audit.inclusion_proof", entry=seq)
    return await asyncio.to_thread(hub.evidence.inclusion_proof, seq, size)


@router.get("/proofs/consistency", summary="RFC 9162 consistency proof between two tree sizes", responses=AUDIT)
async def consistency(
    request: Request,
    who: Auditor,
    first: Annotated[int, Query(ge=1, le=2**53)],
    second: Annotated[int, Query(ge=1, le=2**53)],
) -> dict[str, Any]:
    hub = hub_of(request)
    if not first <= second <= hub.evidence.log.size:
        raise BadRange(f"sizes {first}..{second} are outside the log (size {hub.evidence.log.size})")
    await _audited(request, who, "audit.consistency_proof", first=first, second=second)
    return await asyncio.to_thread(hub.evidence.consistency_proof, first, second)


@router.get(
    "/export",
    summary="An export bundle (zip) of a range of entries, for `python -m audit.verify`",
    responses={**AUDIT, 200: {"content": {"application/zip": {}}, "description": "the bundle, zipped"}},
    response_class=Response,
)
async def export(
    request: Request,
    who: Auditor,
    start: Annotated[int, Query(ge=0, le=2**53)] = 0,
    end: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Response:
    hub = hub_of(request)
    size = hub.evidence.log.size
    if end is not None and not start < end <= size:
        raise BadRange(f"range {start}..{end} is outside the log (size {size})")
    if start >= size:
        raise BadRange(f"start {start} is outside the log (size {size})")
    await _audited(request, who, "audit.export", act="export", start=start, end=end if end is not None else size)

    def bundle() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            out = hub.evidence.export(Path(folder) / "bundle", start, end)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(out.rglob("*")):
                    if path.is_file():
                        archive.write(path, path.relative_to(out).as_posix())
            return buffer.getvalue()

    return Response(await asyncio.to_thread(bundle), media_type="application/zip")


@router.get(
    "/evidence-pack",
    summary="Records of processing, agreements with use counters, the consent ledger and filtered decision logs",
    responses=AUDIT,
)
async def evidence_pack(
    request: Request,
    who: Auditor,
    since: Annotated[str | None, Query(max_length=40, examples=["2026-11-01T00:00:00Z"])] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
    officer_id: Annotated[str | None, Query(alias="officer", max_length=128)] = None,
    subject: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    hub = hub_of(request)
    await _audited(request, who, "audit.evidence_pack")
    selection = EntryFilter(since=since, until=until, agency=agency, purpose=purpose, subject=subject)

    def build() -> dict[str, Any]:
        from sqlmodel import Session, col, select

        decisions: list[dict[str, Any]] = []
        log = hub.evidence.log
        for body in log.bodies(0, log.size):
            entry = json.loads(body)
            if entry.get("type") not in ("access.decision", "data.release"):
                continue
            if not selection.matches(entry):
                continue
            if officer_id is not None and entry.get("actor", {}).get("principal") != officer_id:
                continue
            decisions.append(entry)
            if len(decisions) >= limit:
                break
        with Session(hub.store.engine) as session:
            events = session.exec(select(AgreementEvent).order_by(col(AgreementEvent.id))).all()
            consents = session.exec(select(ConsentEvent).order_by(col(ConsentEvent.id))).all()
            from policies.tables import AgreementRow

            agreements = session.exec(select(AgreementRow).order_by(AgreementRow.id)).all()
        uses = hub.policy.agreements.use_counts()
        return {
            "catalog": {
                "digest": hub.catalog.digest,
                "datasets": [
                    {
                        "id": d.id,
                        "owner": d.owner,
                        "title": d.title,
                        "sharing": d.sharing.attribute.value,
                        "retention": d.retention,
                        "fields": [
                            {
                                "name": f.name,
                                "pi": f.pi.value,
                                "sensitive_category": f.sensitive_category.value if f.sensitive_category else None,
                                "grade": f.grade.value,
                                "mask": f.mask.value,
                            }
                            for f in d.fields
                        ],
                    }
                    for d in hub.catalog
                ],
            },
            "agreements": [agreement_out(a, uses).model_dump() for a in agreements],
            "agreement_events": [
                {
                    "agreement": e.agreement_id,
                    "from": e.from_status,
                    "to": e.to_status,
                    "actor": e.actor,
                    "reason": e.reason,
                    "at": e.at,
                }
                for e in events
            ],
            "consents": [
                {
                    "subject": c.subject,
                    "agreement": c.agreement_id,
                    "type": c.type,
                    "action": c.action,
                    "purposes": list(c.purposes),
                    "scope_version": c.scope_version,
                    "notice_hash": c.notice_hash,
                    "channel": c.channel,
                    "at": c.at,
                }
                for c in consents
            ],
            "reviews": [
                {
                    "id": t.id,
                    "agency": t.agency,
                    "requester": t.requester,
                    "purpose": t.purpose,
                    "opened_at": t.opened_at,
                    "closed_at": t.closed_at,
                    "closed_by": t.closed_by,
                    "outcome": t.outcome,
                }
                for t in hub.reviews.list()
            ],
            "decisions": decisions,
            "filter": selection.describe() + (f" officer={officer_id}" if officer_id else ""),
        }

    return await asyncio.to_thread(build)
