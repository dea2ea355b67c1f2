"""The populated hub both API benchmarks load: residents pulled through the connectors, and an officer.

Shared by bench/api.py (served, against its baseline) and bench/person_view.py (in process), so that the two
measure the same residents' person views with the same officer's token.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hub.settings import Settings
from tests.api_world import populate

OFFICER = "P-BENCH"


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
