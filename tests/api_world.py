"""A small populated hub for API tests: synthetic sources pulled through the connectors into the store."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.entries import Actor
from connectors.pipeline import Pipeline
from hub.api.app import create_app
from hub.api.runtime import HubRuntime
from hub.identifiers import age_on
from hub.settings import Settings, load_settings
from hub.synthetic import generate_sources
from policies.agreements import Principal

BASE = "http://hub.test"
PARTNER_KEY_ID = "police-2026-1"


def populate(var_dir: Path, residents: int = 150, **overrides: Any) -> Settings:
    settings = load_settings(var_dir=var_dir, dev_idp=True, api_public_url=BASE, **overrides)
    generate_sources(var_dir / "sources", residents=residents, seed=7)
    pipeline = Pipeline.from_settings(settings)
    try:
        pipeline.run(settings)
        pipeline.materialise(idle_seconds=0.2)
    finally:
        pipeline.bus.close()
    return settings


@dataclass
class World:
    settings: Settings
    hub: HubRuntime
    app: FastAPI
    client: TestClient
    partner_key: Ed25519PrivateKey
    agreement: str
    resident: str  # an ID number with a civil-affairs registry record, adult, district covered by the city
    district: str

    def token(self, subject: str, agency: str, roles: list[str], jurisdiction: str = "110100", **kw: Any) -> str:
        assert self.hub.dev_idp is not None
        return self.hub.dev_idp.issue(subject, agency=agency, roles=roles, jurisdiction=jurisdiction, **kw)

    def bearer(self, *args: Any, **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*args, **kw)}"}


def setup_world(settings: Settings) -> Iterator[World]:
    hub = HubRuntime.open(settings)
    roles = hub.policy.roles
    for principal, role, agency in (
        ("P-0042", "investigator", "police"),
        ("P-0043", "officer", "police"),
        ("PA-1", "agency_admin", "police"),
        ("CA-1", "agency_admin", "civil_affairs"),
        ("CA-DPO", "dpo", "civil_affairs"),
        ("P-DPO", "dpo", "police"),
        ("AUD-1", "auditor", "civil_affairs"),
        ("H-7", "officer", "health"),
        ("svc:police", "partner_service", "police"),
    ):
        roles.assign(principal, role, agency)
    now = int(time.time())
    agreement_id = share_registry(
        hub,
        Principal("PA-1", "police", "agency_admin"),
        Principal("CA-1", "civil_affairs", "agency_admin"),
        ["fraud_investigation", "missing_person", "fraud_warning"],
    )
    police_admin = Actor(agency="police", principal="PA-1", role="agency_admin")
    hub.cases.open("CASE-2026-0417", "police", police_admin)
    hub.cases.assign("CASE-2026-0417", "P-0042", police_admin)
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    hub.partner_keys.register("police", PARTNER_KEY_ID, raw, now - 60, now + 86400, police_admin)
    resident, district = pick_resident(hub)
    app = create_app(settings, hub)
    with TestClient(app, base_url=BASE) as client:
        yield World(settings, hub, app, client, key, agreement_id, resident, district)
    hub.close()


def share_registry(hub: HubRuntime, requester: Principal, provider: Principal, purposes: list[str]) -> str:
    """An active agreement (requested, approved, activated) giving ``requester``'s agency the civil-affairs
    registry's main fields for ``purposes``, under statutory duty, for a day; its id."""
    now = int(time.time())
    agreement = hub.policy.agreements.request(
        requester,
        provider="civil_affairs",
        dataset="civil_affairs.vulnerable_person",
        fields=["person_no", "name", "category", "address", "phone", "community", "district", "id_number"],
        purposes=purposes,
        lawful_basis="statutory_duty",
        legal_citation="PIPL 13(3); People's Police Law art. 6",
        necessity="identify and protect vulnerable residents targeted by fraud",
        valid_from=now - 60,
        valid_until=now + 86400,
    )
    hub.policy.agreements.approve(agreement.id, provider)
    hub.policy.agreements.activate(agreement.id, provider)
    return agreement.id


def pick_resident(hub: HubRuntime) -> tuple[str, str]:
    from datetime import date

    from sqlmodel import Session, select

    from hub.store.tables import RecordRow

    with Session(hub.store.engine) as session:
        rows = session.exec(
            select(RecordRow).where(RecordRow.dataset_id == "civil_affairs.vulnerable_person").limit(50)
        ).all()
    for row in rows:
        record = hub.store.get(row.dataset_id, row.record_key)
        assert record is not None
        values = hub.protector.reveal(record, {"id_number"})
        id_number = str(values["id_number"])
        if age_on(id_number, date.today()) >= 18:
            return id_number, str(record.clear_fields["district"])
    raise AssertionError("no adult registry resident in the sample")


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
