"""``hub keys``: create, inspect, rotate and retire keys, and crypto-shred a resident."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hub.cli.console import out
from hub.identifiers import normalise_id_number
from hub.protection import SUBJECT_INDEX_FAMILY, open_key_service
from hub.settings import get_settings

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


@app.command("rotate")
def rotate() -> None:
    """New KEK version; rewrap every live data key under it (no data is re-encrypted)."""
    report = open_key_service(get_settings()).rotate()
    out.print(
        f"KEK {report.kek_id}: version {report.old_version} -> {report.new_version}, "
        f"{report.rewrapped:,} data keys rewrapped"
    )


@app.command("retire")
def retire(version: Annotated[int, typer.Argument(help="KEK version to destroy")]) -> None:
    """Destroy an old KEK version once no data key is wrapped under it."""
    open_key_service(get_settings()).retire(version)
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
    out.print(f"shredded data key {receipt.dek_id[:12]}… at {receipt.shredded_at}; {receipt.note}")
