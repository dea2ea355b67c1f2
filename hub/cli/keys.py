"""``hub keys``: create, inspect, rotate and retire keys, and crypto-shred a resident."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from audit.entries import EntryDraft
from hub.cli.console import out
from hub.evidence import PSEUDONYM_FAMILY, key_op, open_audit_log, operator_actor, shred_entry
from hub.identifiers import normalise_id_number
from hub.protection import SUBJECT_INDEX_FAMILY, open_key_service
from hub.settings import get_settings
from keys.service import KeyService

app = typer.Typer(help="Field encryption keys: status, rotation, retirement, crypto-shredding.", no_args_is_help=True)


@app.command("init")
def init() -> None:
    """Create the keystore (first KEK version) if it does not exist yet."""
    settings = get_settings()
    service = open_key_service(settings, create=True)
    out.print(
        f"keystore ready: {settings.effective_keystore_path} ({service.suite.label}, KEK {service.keystore.kek_id})"
    )


@app.command("status")
def status() -> None:
    """KEK versions with the data keys each wraps, shredded subjects, last rotation."""
    report = open_key_service(get_settings()).status()
    table = Table(title=f"KEK {report.kek_id} ({report.suite})", title_justify="left")
    for column in ("version", "created", "retired", "data keys", ""):
        table.add_column(column)
    for version in report.versions:
        table.add_row(
            str(version.version),
            version.created_at,
            version.retired_at or "",
            f"{version.data_keys:,}",
            "[green]current[/]" if version.current else "",
        )
    out.print(table)
    out.print(
        f"data keys live: {report.data_keys:,}; shredded: {report.shredded:,}; "
        f"last rotation: {report.last_rotation or 'never'}"
    )


def _audited(service: KeyService, draft: EntryDraft) -> None:
    """Record a key operation; the CLI fails (exit 2) if the audit log cannot take it."""
    log = open_audit_log(get_settings(), service, interval=False)
    try:
        log.append(draft)
    finally:
        log.close()


@app.command("rotate")
def rotate() -> None:
    """New KEK version; rewrap every live data key under it (no data is re-encrypted)."""
    service = open_key_service(get_settings())
    report = service.rotate()
    _audited(
        service,
        key_op(
            "kek.rotate",
            operator_actor(),
            kek=report.kek_id,
            old_version=report.old_version,
            new_version=report.new_version,
            rewrapped=report.rewrapped,
        ),
    )
    out.print(
        f"KEK {report.kek_id}: version {report.old_version} -> {report.new_version}, "
        f"{report.rewrapped:,} data keys rewrapped"
    )


@app.command("retire")
def retire(version: Annotated[int, typer.Argument(help="KEK version to destroy")]) -> None:
    """Destroy an old KEK version once no data key is wrapped under it."""
    service = open_key_service(get_settings())
    service.retire(version)
    _audited(service, key_op("kek.retire", operator_actor(), kek=service.keystore.kek_id, version=version))
    out.print(f"KEK version {version} retired: its key material is destroyed")


@app.command("shred")
def shred(
    id_number: Annotated[str, typer.Option(prompt=True, hide_input=True, help="the resident's ID number")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Crypto-shred one resident: every copy of their personal data becomes unreadable, for good."""
    if not yes:
        typer.confirm("This erases the resident's data irreversibly. Continue?", abort=True)
    service = open_key_service(get_settings())
    receipt = service.shred(service.blind_index(SUBJECT_INDEX_FAMILY, normalise_id_number(id_number)))
    pseudonym = service.blind_index(PSEUDONYM_FAMILY, normalise_id_number(id_number)).hex()
    _audited(service, shred_entry(receipt, operator_actor(), pseudonym))
    out.print(f"shredded data key {receipt.dek_id[:12]}… at {receipt.shredded_at}; {receipt.note}")
