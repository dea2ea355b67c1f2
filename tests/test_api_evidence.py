"""Auditors, residents and admins: evidence, "who accessed my data" (covert accesses withheld), separation of duties."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from audit.entries import Actor
from audit.merkle import verify_inclusion
from tests.api_world import World, public_key_b64

VIEW = "/v1/officer/person-view"


def auditor(world: World) -> dict[str, str]:
    return world.bearer("AUD-1", "civil_affairs", ["auditor"])


def test_auditor_exports_a_bundle_the_offline_verifier_accepts(world: World, tmp_path: Path) -> None:
    world.hub.evidence.log.checkpoint(force=True)
    checkpoint = world.client.get("/v1/audit/checkpoint", headers=auditor(world)).json()
    response = world.client.get("/v1/audit/export", headers=auditor(world))
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    folder = tmp_path / "bundle"
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(folder)
    result = subprocess.run(
        [sys.executable, "-m", "audit.verify", str(folder), "--key", checkpoint["verifier_keys"][0]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    proof = world.client.get("/v1/audit/proofs/inclusion", params={"seq": 0}, headers=auditor(world)).json()
    verify_inclusion(
        0,
        proof["tree_size"],
        base64.b64decode(proof["leaf_hash"]),
        [base64.b64decode(p) for p in proof["proof"]],
        base64.b64decode(proof["root"]),
    )
    bad = world.client.get("/v1/audit/proofs/consistency", params={"first": 5, "second": 10**9}, headers=auditor(world))
    assert bad.status_code == 400


def test_auditor_reads_are_audited_and_officers_may_not_read(world: World) -> None:
    size = world.hub.evidence.log.size
    world.client.get("/v1/audit/checkpoint", headers=auditor(world))
    assert world.hub.evidence.log.size > size
    refused = world.client.get("/v1/audit/checkpoint", headers=world.bearer("P-0043", "police", ["officer"]))
    assert refused.status_code == 403


def test_evidence_pack_filters_decisions_by_officer_and_subject(world: World) -> None:
    world.client.post(
        VIEW,
        json={"id_number": world.resident, "purpose": "fraud_warning"},
        headers=world.bearer("P-0042", "police", ["investigator"]),
    )
    subject = world.hub.evidence.pseudonym(world.resident)
    pack = world.client.get(
        "/v1/audit/evidence-pack", params={"officer": "P-0042", "subject": subject}, headers=auditor(world)
    ).json()
    assert pack["decisions"] and all(d["actor"]["principal"] == "P-0042" for d in pack["decisions"])
    assert all(d["subject"] == subject for d in pack["decisions"])
    assert {a["id"] for a in pack["agreements"]} >= {world.agreement}
    assert any(f["pi"] == "sensitive" for d in pack["catalog"]["datasets"] for f in d["fields"])
    assert world.resident not in str(pack)


def test_residents_see_accesses_but_covert_ones_only_after_the_case_closes(world: World) -> None:
    admin = Actor(agency="police", principal="PA-1", role="agency_admin")
    world.hub.cases.open("CASE-2026-9001", "police", admin, covert=True, disclose_after=int(time.time()) + 86400)
    world.hub.cases.assign("CASE-2026-9001", "P-0042", admin)
    me = world.bearer("R-1", "resident", ["resident"], id_number=world.resident)
    before = world.client.get("/v1/me/accesses", headers=me).json()["accesses"]
    world.client.post(
        VIEW,
        json={"id_number": world.resident, "purpose": "fraud_investigation", "case_id": "CASE-2026-9001"},
        headers=world.bearer("P-0042", "police", ["investigator"], mfa=True),
    )
    hidden = world.client.get("/v1/me/accesses", headers=me).json()["accesses"]
    assert hidden == before
    assert "P-0042" not in str(hidden)
    closed = world.client.post(
        "/v1/admin/cases/CASE-2026-9001/close", headers=world.bearer("PA-1", "police", ["agency_admin"])
    )
    assert closed.status_code == 200, closed.text
    shown = world.client.get("/v1/me/accesses", headers=me).json()["accesses"]
    assert len(shown) > len(before)
    assert {"agency", "purpose", "time"} <= set(shown[-1]) and "principal" not in shown[-1]


def test_a_residents_accesses_show_a_release_at_once_and_fail_closed_without_the_index(
    world: World, tmp_path: Path
) -> None:
    """The index reads on to the log's end before it answers: a release is listed as soon as it is made, and an
    index that cannot read on answers 503 rather than a list that may leave accesses out."""
    from keys.sql import create_sql_engine

    me = world.bearer("R-1", "resident", ["resident"], id_number=world.resident)
    before = world.client.get("/v1/me/accesses", headers=me).json()["accesses"]
    officer = world.bearer("P-0042", "police", ["investigator"], mfa=True)
    view = world.client.post(VIEW, json={"id_number": world.resident, "purpose": "fraud_warning"}, headers=officer)
    assert view.status_code == 200, view.text
    after = world.client.get("/v1/me/accesses", headers=me).json()["accesses"]
    assert sum(a["records"] for a in after) > sum(a["records"] for a in before)
    index = world.hub.accesses
    working, index.engine = index.engine, create_sql_engine(f"sqlite:///{tmp_path / 'not-an-index.db'}")
    try:
        refused = world.client.get("/v1/me/accesses", headers=me)
    finally:
        index.engine = working
    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["component"] == "audit"


def test_resident_withdraws_a_consent_given_at_a_counter(world: World) -> None:
    counter = world.client.post(
        "/v1/admin/consents",
        json={
            "id_number": world.resident,
            "agreement_id": world.agreement,
            "type": "general",
            "purposes": ["fraud_warning"],
            "notice_text": "notice v1",
        },
        headers=world.bearer("CA-1", "civil_affairs", ["agency_admin"]),
    )
    assert counter.status_code == 201, counter.text
    me = world.bearer("R-1", "resident", ["resident"], id_number=world.resident)
    withdrawn = world.client.post(
        "/v1/me/consents/withdraw", json={"agreement_id": world.agreement, "type": "general"}, headers=me
    )
    assert withdrawn.json()["status"] == "withdrawn"
    assert [c["status"] for c in world.client.get("/v1/me/consents", headers=me).json()] == ["granted", "withdrawn"]


def test_admins_manage_keys_and_roles_with_separation_of_duties(world: World) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    admin = world.bearer("CA-1", "civil_affairs", ["agency_admin"])
    now = int(time.time())
    body: dict[str, Any] = {
        "key_id": "civil_affairs-2026-9",
        "public_key": public_key_b64(Ed25519PrivateKey.generate()),
        "valid_from": now,
        "valid_until": now + 3600,
    }
    assert world.client.post("/v1/admin/keys", json=body, headers=admin).status_code == 201
    listed = world.client.get("/v1/admin/keys", headers=admin).json()
    assert "civil_affairs-2026-9" in {k["key_id"] for k in listed}
    revoked = world.client.post("/v1/admin/keys/civil_affairs-2026-9/revoke", json={"reason": "rotated"}, headers=admin)
    assert revoked.json()["revoked_at"] is not None
    clash = world.client.post("/v1/admin/roles", json={"principal": "CA-1", "role": "auditor"}, headers=admin)
    assert clash.status_code == 403 and clash.json()["type"].endswith("/separation-of-duties")
    officer = world.client.post(
        "/v1/admin/roles",
        json={"principal": "x", "role": "officer"},
        headers=world.bearer("P-0043", "police", ["officer"]),
    )
    assert officer.status_code == 403
