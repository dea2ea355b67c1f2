"""Partner agencies over RFC 9421: the signed happy path, and every forgery refused and audited."""

from __future__ import annotations

import datetime
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.entries import Actor
from hub.api.models import ReleaseOut
from hub.client import NotAuthenticated, PartnerClient, UnsignedResponse
from hub.httpsig import Message, sign_request
from tests.api_world import BASE, PARTNER_KEY_ID, World


def client(world: World, key: Ed25519PrivateKey | None = None, key_id: str = PARTNER_KEY_ID) -> PartnerClient:
    return PartnerClient(
        BASE,
        key_id=key_id,
        private_key=key or world.partner_key,
        hub_public_key=world.hub.response_key.public_key(),
        transport=world.client._transport,
    )


def signed(world: World, method: str, path: str, body: bytes = b"", **kw: Any) -> dict[str, str]:
    message = Message.of(method, BASE + path, [("content-type", "application/json")] if body else [])
    sign_request(message, body, kw.pop("key_id", PARTNER_KEY_ID), kw.pop("key", world.partner_key), **kw)
    return dict(message.headers.items())


def failures(world: World) -> list[dict[str, Any]]:
    log = world.hub.evidence.log
    return [e for e in (json.loads(b) for b in log.bodies(0, log.size)) if e["type"] == "auth.failure"]


def query_body(world: World) -> bytes:
    return json.dumps({"id_number": world.resident, "purpose": "fraud_warning"}).encode()


def test_signed_query_returns_records_and_a_signed_answer(world: World) -> None:
    with client(world) as partner:
        answer = partner.query(world.resident, "fraud_warning", datasets=["civil_affairs.vulnerable_person"])
    assert answer["records"], "the agreement covers the registry record"
    record = answer["records"][0]
    assert record["fields"]["name"]["outcome"] == "reveal" and record["fields"]["name"]["value"]
    assert record["fields"]["guardian_name"]["outcome"] == "deny"  # outside the agreement's fields
    log = world.hub.evidence.log
    release = json.loads(next(iter(log.bodies(answer["audit"]["release_seq"], answer["audit"]["release_seq"] + 1))))
    assert release["type"] == "data.release" and release["payload_digest"] == answer["audit"]["payload_digest"]
    assert ReleaseOut.model_validate(answer).model_dump(mode="json") == answer  # the documented model, exactly


def test_the_client_rejects_an_answer_signed_by_another_key(world: World) -> None:
    impostor = Ed25519PrivateKey.generate().public_key()
    partner = PartnerClient(
        BASE,
        key_id=PARTNER_KEY_ID,
        private_key=world.partner_key,
        hub_public_key=impostor,
        transport=world.client._transport,
    )
    with partner, pytest.raises(UnsignedResponse):
        partner.query(world.resident, "fraud_warning")


@pytest.mark.parametrize(
    "tamper",
    ["forged", "altered-body", "altered-path", "altered-query", "stale", "future", "unknown-key", "no-signature"],
)
def test_tampered_requests_are_refused_and_audited(world: World, tamper: str) -> None:
    body = query_body(world)
    path = "/v1/partner/records/query"
    kwargs: dict[str, Any] = {}
    if tamper == "forged":
        kwargs["key"] = Ed25519PrivateKey.generate()
    if tamper == "stale":
        kwargs["created"] = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=301 + 5)
    if tamper == "future":
        kwargs["created"] = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=400)
    if tamper == "unknown-key":
        kwargs["key_id"] = "nobody-2026"
    headers = signed(world, "POST", path, body, **kwargs)
    sent_body, sent_path = body, path
    if tamper == "altered-body":
        sent_body = body.replace(b"fraud_warning", b"fraud_investigation")
    if tamper == "altered-path":
        sent_path = "/v1/partner/records/query?x=1"
    if tamper == "altered-query":
        feed = "/v1/partner/datasets/civil_affairs.vulnerable_person/feed?purpose=fraud_warning&limit=1"
        headers = signed(world, "GET", feed)
        sent_path, sent_body = feed.replace("limit=1", "limit=2"), b""
    if tamper == "no-signature":
        headers = {"content-type": "application/json"}
    before = len(failures(world))
    method = "GET" if tamper == "altered-query" else "POST"
    response = world.client.request(method, sent_path, content=sent_body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert world.resident not in response.text
    assert len(failures(world)) == before + 1


def test_a_replayed_nonce_is_refused_even_after_a_restart(world: World) -> None:
    body = query_body(world)
    headers = signed(world, "POST", "/v1/partner/records/query", body)
    first = world.client.post("/v1/partner/records/query", content=body, headers=headers)
    assert first.status_code == 200
    again = world.client.post("/v1/partner/records/query", content=body, headers=headers)
    assert again.status_code == 401 and again.json()["type"].endswith("/replayed-request")
    from hub.api.nonces import NonceStore

    reopened = NonceStore(world.hub.store.engine, 300)  # a new process would read the same table
    nonce = headers["Signature-Input"].split('nonce="')[1].split('"')[0]
    assert not reopened.first_use(PARTNER_KEY_ID, nonce)
    assert failures(world)[-1]["detail"]["reason"] == "replayed-nonce"


def test_a_revoked_key_is_refused(world: World) -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(time.time())
    admin = Actor(agency="police", principal="PA-1", role="agency_admin")
    world.hub.partner_keys.register("police", "police-revoked", raw, now - 10, now + 3600, admin)
    with client(world, key, "police-revoked") as partner:
        assert partner.query(world.resident, "fraud_warning")["subject"]
        world.hub.partner_keys.revoke("police-revoked", "laptop stolen", admin)
        with pytest.raises(NotAuthenticated) as refused:
            partner.query(world.resident, "fraud_warning")
    assert refused.value.problem["type"].endswith("/key-not-valid")
    assert failures(world)[-1]["detail"]["reason"] == "key-not-valid"


def test_a_purpose_outside_the_agreement_is_refused_and_audited(world: World) -> None:
    with client(world) as partner:
        answer = partner.query(world.resident, "welfare_check", datasets=["civil_affairs.vulnerable_person"])
    assert answer["records"] == [] and answer["refused"] >= 1
    assert any("PIPL-6-purpose" in r for refusal in answer["refusals"] for r in refusal["reasons"])
    log = world.hub.evidence.log
    last = [json.loads(b) for b in log.bodies(max(0, log.size - 5), log.size)]
    query = next(e for e in reversed(last) if e["type"] == "data.release")
    assert query["decisions"] and all(d["result"] == "deny" for d in query["decisions"])


def test_feed_pages_through_a_dataset_with_a_cursor(world: World) -> None:
    seen: list[str] = []
    cursor = None
    with client(world) as partner:
        for _ in range(50):
            page = partner.feed("civil_affairs.vulnerable_person", "fraud_warning", cursor=cursor, limit=7)
            seen += [r["record_key"] for r in page["records"]]
            if page["next_cursor"] == cursor or (not page["records"] and not page["refused"]):
                break
            cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == world.hub.store.count("civil_affairs.vulnerable_person")


def test_push_goes_through_validation_and_dead_letters(world: World) -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(time.time())
    admin = Actor(agency="civil_affairs", principal="CA-1", role="agency_admin")
    world.hub.partner_keys.register("civil_affairs", "civil-push", raw, now - 10, now + 3600, admin)
    world.hub.policy.roles.assign("svc:civil_affairs", "partner_service", "civil_affairs")
    good = {
        "person_no": "MZ-PUSH-1",
        "id_number": world.resident,
        "name": "测试",
        "category": "solitary_elderly",
        "address": "北京市海淀区某街1号",
        "district": world.district,
        "community": "某社区",
        "registered_on": "2024-01-02",
        "updated_at": "2026-11-20T10:00:00+08:00",
    }
    bad = {**good, "person_no": "MZ-PUSH-2", "id_number": "110105194912310026"}  # wrong check digit
    with client(world, key, "civil-push") as partner:
        answer = partner.push("civil_affairs.vulnerable_person", [good, bad])
        assert answer["accepted"] == 1, answer
        assert [d["position"].endswith(":1") for d in answer["dead_letters"]] == [True]
        assert "110105194912310026" not in json.dumps(answer)
        with pytest.raises(Exception, match="own datasets"):
            partner.push("police.incident", [good])
        # Two pushes under one X-Request-Id, a different faulty record at the same index in each: both
        # kept as dead letters, since a push's rows are named by its signed request's nonce.
        path, same_id = "/v1/partner/datasets/civil_affairs.vulnerable_person/records", {"X-Request-Id": "batch-00001"}
        for number in ("3", "4"):
            faulty = {**bad, "person_no": f"MZ-PUSH-{number}"}
            partner._call("POST", path, json={"records": [faulty]}, headers=same_id)
    from connectors.deadletters import list_dead_letters

    pushed = [d for d in list_dead_letters(world.hub.store.engine) if d.connector.startswith("push:")]
    assert len(pushed) == 3 and len({d.position for d in pushed}) == 3
    assert all(d.position.startswith("push:civil-push/") for d in pushed)
