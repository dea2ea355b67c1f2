"""Pieces the routers share: the problem responses OpenAPI lists, and Release -> response conversion."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from hub.api.problems import PROBLEM_MEDIA_TYPE
from hub.release import RecordView, Release

_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "the request is invalid (unknown purpose, malformed case id, ...)",
        401: "not authenticated: bad token or bad signature",
        403: "authenticated, but not allowed",
        404: "no such resource",
        409: "the request conflicts with the current state",
        422: "the request does not match the schema",
        503: "a component the answer depends on is down; nothing was released",
    }
    return {
        s: {"description": descriptions[s], "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}}
        for s in statuses
    }


def record_json(view: RecordView) -> dict[str, Any]:
    """A released record as :class:`RecordOut`'s JSON: the one place that shape is written, for release answers
    (serialized directly) and feed pages (validated through ``FeedOut``)."""
    return {
        "dataset": view.dataset,
        "record_key": view.record_key,
        "owner": view.owner,
        "version": view.version,
        "allow": view.allow,
        "policy": view.policy,
        "reasons": view.reasons,
        "obligations": view.obligations,
        "fields": {n: {"outcome": f[0], "value": f[1], "reason": f[2]} for n, f in view.fields.items()},
    }


def release_json(release: Release, acr_values: list[str]) -> Response:
    """The answer to a release as :class:`ReleaseOut`'s JSON, written by orjson from the release itself.

    Routes that answer with it declare ``response_model=ReleaseOut``, so OpenAPI documents the same shape
    (tests hold the two equal). Building the answer as pydantic models (one a field, a record and a refusal)
    that FastAPI then validates and dumps again cost more than the JSON itself, on every person view.
    """
    body = {
        "subject": release.subject,
        "records": [record_json(v) for v in release.records],
        "refused": release.refused,
        "refusals": [{"dataset": r[0], "reasons": r[1], "records": r[2]} for r in release.refusals],
        "step_up": {"required": release.step_up_required, "acr_values": acr_values if release.step_up_required else []},
        "review_task": release.review_task,
        "audit": {"release_seq": release.release_seq, "payload_digest": release.payload_digest},
    }
    return Response(orjson.dumps(body), media_type="application/json")
