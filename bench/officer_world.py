"""The populated hub both API benchmarks load: residents pulled through the connectors, and an officer.

Shared by bench/api.py (served, against its baseline) and bench/person_view.py (in process), so that the two
measure the same residents' person views with the same officer's token.

The officer's queries go through the whole release path: an active sharing agreement gives police the
civil-affairs registry for ``PURPOSE`` (as in the demo), so each person view reveals and masks the
registry record's fields (decryption, masking, the payload digest) and refuses the rest with reasons.
Before 2026-12-04 the world had no agreement, so every record was refused and nothing was decrypted: the
figures measured until then are of the refusing path only.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hub.settings import Settings
from policies.agreements import Principal
from tests.api_world import populate, share_registry

OFFICER = "P-BENCH"
PURPOSE = "fraud_warning"  # covered by the agreement officer_world sets up; needs no case


def officer_world(
    folder: Path, residents: int, public_url: str, **overrides: Any
) -> tuple[Settings, list[tuple[str, str]], str]:
    """The settings of a hub populated in ``folder``; up to 200 residents as (ID number, subject index hex),
    shuffled; and a bearer token of a police officer of district 110100, valid for an hour."""
    from sqlmodel import Session, select

    from hub.api.runtime import HubRuntime
    from hub.store.tables import RecordRow

    settings = populate(folder, residents=residents, **overrides)
    hub = HubRuntime.open(settings.model_copy(update={"api_public_url": public_url}))
    try:
        hub.policy.roles.assign(OFFICER, "officer", "police")
        requester, provider = (
            Principal("PA-BENCH", "police", "agency_admin"),
            Principal("CA-BENCH", "civil_affairs", "agency_admin"),
        )
        for admin in (requester, provider):
            hub.policy.roles.assign(admin.id, "agency_admin", admin.agency)
        share_registry(hub, requester, provider, [PURPOSE])
        with Session(hub.store.engine) as session:
            rows = session.exec(
                select(RecordRow).where(RecordRow.dataset_id == "civil_affairs.vulnerable_person").limit(200)
            ).all()
        found = []
        for row in rows:
            record = hub.store.get(row.dataset_id, row.record_key)
            if record is not None:
                id_number = str(hub.protector.reveal(record, {"id_number"})["id_number"])
                found.append((id_number, record.subject_index.hex()))
        random.Random(7).shuffle(found)
        if hub.dev_idp is None:
            raise SystemExit("the benchmark needs the development identity provider")
        token = hub.dev_idp.issue(OFFICER, agency="police", roles=["officer"], jurisdiction="110100", lifetime=3600)
    finally:
        hub.close()
    return settings, found, token


def check_release(answer: bytes) -> str:
    """Refuse to measure a person view that releases nothing: the one-line summary of what it released."""
    import json

    found = json.loads(answer)
    shown = [f["outcome"] for r in found.get("records", []) for f in r["fields"].values()]
    if "reveal" not in shown:
        raise SystemExit(f"the benchmark's person view revealed nothing: {answer[:300]!r}")
    return (
        f"{len(found['records'])} record(s) released ({shown.count('reveal')} fields revealed, "
        f"{shown.count('mask')} masked, {shown.count('deny')} denied), {found['refused']} refused"
    )
