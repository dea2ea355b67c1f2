"""The API part of ``hub demo``: the whole scenario over HTTP, as partners, officers, residents and auditors see it."""

from __future__ import annotations

import base64
import datetime
import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.table import Table

from hub.api.app import create_app
from hub.api.runtime import HubRuntime
from hub.cli.console import out
from hub.client import NotAuthenticated, PartnerClient
from hub.httpsig import Message, sign_request
from hub.settings import Settings
from hub.synthetic.serve import serve_in_thread

CASE = "CASE-2026-0417"


class _Deferred:
    """An ASGI app filled in once the server's URL (which signed requests cover) is known."""

    def __init__(self) -> None:
        self.app: Callable[..., Awaitable[None]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError("the demo app is not ready")
        await self.app(scope, receive, send)


def _field_table(title: str, record: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("field", "decision", "shown", "why"):
        table.add_column(column)
    colours = {"reveal": "green", "mask": "yellow", "deny": "red"}
    for name, shown in record["fields"].items():
        value = "—" if shown["value"] is None else str(shown["value"])
        table.add_row(name, f"[{colours[shown['outcome']]}]{shown['outcome']}[/]", value, shown["reason"] or "")
    return table


def demo_api(settings: Settings, resident: str, agreement_id: str) -> None:
    out.rule("[bold]API[/]: officers (OIDC), partners (RFC 9421), residents and auditors over HTTP")
    deferred = _Deferred()
    with serve_in_thread(deferred) as url:
        api_settings = settings.model_copy(update={"api_public_url": url, "dev_idp": True})
        hub = HubRuntime.open(api_settings)
        deferred.app = create_app(api_settings, hub)
        try:
            _scenario(hub, url, resident, agreement_id)
        finally:
            hub.close()


def _scenario(hub: HubRuntime, url: str, resident: str, agreement_id: str) -> None:
    idp = hub.dev_idp
    if idp is None:
        raise SystemExit("the demo needs the development identity provider")
    http = httpx.Client(base_url=url, timeout=30)
    police_admin = {
        "Authorization": f"Bearer {idp.issue('PA-1', agency='police', roles=['agency_admin'], jurisdiction='110100')}"
    }
    for path, payload in (
        ("/v1/admin/cases", {"case_id": CASE}),
        (f"/v1/admin/cases/{CASE}/assign", {"principal": "P-0042"}),
    ):
        done = http.post(path, json=payload, headers=police_admin)
        if done.status_code >= 400:
            raise SystemExit(f"POST {path}: {done.status_code} {done.json().get('detail')}")
    officer = idp.issue("P-0042", agency="police", roles=["investigator"], jurisdiction="110100", mfa=False)
    bearer = {"Authorization": f"Bearer {officer}"}
    body = {"id_number": resident, "purpose": "fraud_investigation", "case_id": CASE}
    response = http.post("/v1/officer/person-view", json=body, headers=bearer)
    answer = response.json()
    registry = next((r for r in answer.get("records", []) if r["dataset"] == "civil_affairs.vulnerable_person"), None)
    if registry is None:
        raise SystemExit(f"the officer's person view returned no registry record: {response.status_code} {answer}")
    out.print(_field_table(f"POST /v1/officer/person-view — investigator P-0042, {CASE}, password only", registry))
    out.print(
        f"{len(answer['records'])} records released, {answer['refused']} refused; step-up required for sensitive "
        f"fields: {answer['step_up']['required']}; release audited as entry #{answer['audit']['release_seq']}."
    )
    refused = http.post("/v1/officer/person-view", json={**body, "case_id": None}, headers=bearer).json()
    reason = refused["refusals"][0]["reasons"][-1] if refused["refusals"] else "—"
    out.print(f"Same officer, no case: [red]{len(refused['records'])} records[/] — {reason} (audited).")

    key = Ed25519PrivateKey.generate()
    now = int(time.time())
    raw = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    registered = http.post(
        "/v1/admin/keys",
        json={"key_id": "police-2026-1", "public_key": raw, "valid_from": now - 5, "valid_until": now + 86400},
        headers=police_admin,
    )
    registered.raise_for_status()
    hub_key = hub.response_key.public_key()
    with PartnerClient(url, key_id="police-2026-1", private_key=key, hub_public_key=hub_key) as partner:
        shared = partner.query(resident, "fraud_warning", datasets=["civil_affairs.vulnerable_person"])
    out.print(
        f"Partner system police-2026-1, signed request (RFC 9421): [green]{len(shared['records'])} record[/] under "
        f"agreement {agreement_id}; the hub's response signature verified by hub.client."
    )
    signed_body = json.dumps({"id_number": resident, "purpose": "fraud_warning"}).encode()
    message = Message.of("POST", f"{url}/v1/partner/records/query", [("content-type", "application/json")])
    sign_request(message, signed_body, "police-2026-1", key, created=datetime.datetime.now(datetime.UTC))
    headers = dict(message.headers.items())
    tampered = http.post(
        "/v1/partner/records/query",
        content=signed_body.replace(b"fraud_warning", b"fraud_investigation"),
        headers=headers,
    )
    first = http.post("/v1/partner/records/query", content=signed_body, headers=headers)
    replay = http.post("/v1/partner/records/query", content=signed_body, headers=headers)
    out.print(
        f"Tampered body: [red]{tampered.status_code}[/] {tampered.json()['detail']}; original: {first.status_code}; "
        f"replayed: [red]{replay.status_code}[/] {replay.json()['detail']} (both refusals audited)."
    )
    try:
        with PartnerClient(
            url, key_id="police-2026-1", private_key=Ed25519PrivateKey.generate(), hub_public_key=hub_key
        ) as forger:
            forger.query(resident, "fraud_warning")
    except NotAuthenticated as error:
        out.print(f"Forged signature: [red]{error.status}[/] {error.problem['type'].rsplit('/', 1)[-1]}.")

    me = {"Authorization": f"Bearer {idp.issue('R-1', roles=['resident'], id_number=resident)}"}
    accesses = http.get("/v1/me/accesses", headers=me).json()["accesses"]
    table = Table(title="GET /v1/me/accesses — the resident's view (no officer names)", title_justify="left")
    for column in ("time (UTC)", "agency", "purpose", "dataset", "result", "records"):
        table.add_column(column)
    for access in accesses[-8:]:
        when = datetime.datetime.fromtimestamp(access["time"], datetime.UTC).strftime("%H:%M:%S")
        colour = "green" if access["result"] == "permit" else "red"
        table.add_row(
            when,
            access["agency"],
            access["purpose"],
            access["dataset"],
            f"[{colour}]{access['result']}[/]",
            str(access["records"]),
        )
    out.print(table)

    hub.policy.roles.assign("AUD-1", "auditor", "civil_affairs")
    audit_token = idp.issue("AUD-1", agency="civil_affairs", roles=["auditor"], jurisdiction="110100")
    auditor = {"Authorization": f"Bearer {audit_token}"}
    hub.evidence.log.checkpoint(force=True)
    checkpoint = http.get("/v1/audit/checkpoint", headers=auditor).json()
    bundle = http.get("/v1/audit/export", headers=auditor)
    folder = hub.settings.var_dir / "audit-export-api"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    zipfile.ZipFile(io.BytesIO(bundle.content)).extractall(folder)
    command = [sys.executable, "-m", "audit.verify", str(folder), "--key", checkpoint["verifier_keys"][0]]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own verifier
    colour = "green" if result.returncode == 0 else "red"
    out.print(f"Auditor AUD-1: GET /v1/audit/export ({len(bundle.content):,} bytes) → python -m audit.verify:")
    out.print(f"[{colour}]{result.stdout.strip()}[/]", highlight=False)
    if result.returncode != 0:
        raise SystemExit("the offline verifier rejected the bundle the API exported")
