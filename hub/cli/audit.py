"""``hub audit``: checkpoints, exports for auditors, witnessing, verification and key rotation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from audit.export import EntryFilter
from audit.verify import main as verify_main
from audit.witness import SizeConflict
from hub.cli.console import out
from hub.evidence import Evidence, open_audit_log, rotate_signing_key, witness_latest
from hub.protection import open_key_service
from hub.settings import get_settings

app = typer.Typer(help="The verifiable audit log: checkpoints, exports, witnesses.", no_args_is_help=True)


@contextlib.contextmanager
def evidence() -> Iterator[Evidence]:
    settings = get_settings()
    keys = open_key_service(settings, create=True)
    log = open_audit_log(settings, keys, interval=False)
    try:
        yield Evidence(log, keys)
    finally:
        log.close()


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint of the log now (if it grew) and print it."""
    with evidence() as ev:
        out.print(ev.current_checkpoint()["note"], end="", highlight=False)


@app.command("key")
def key() -> None:
    """Print the verifier key(s) auditors pin (newest first)."""
    with evidence() as ev:
        for line in ev.verifier_keys():
            out.print(line, highlight=False)


@app.command("rotate-key")
def rotate_key() -> None:
    """Add a new checkpoint signing key; the newest two sign from now on."""
    settings = get_settings()
    version = rotate_signing_key(open_key_service(settings))
    out.print(f"audit signing key version {version} created; run 'hub audit key' for the verifier keys")


@app.command("export")
def export(
    out_dir: Annotated[Path, typer.Option("--out", help="bundle directory to write")],
    start: Annotated[int, typer.Option(help="first sequence number")] = 0,
    end: Annotated[int | None, typer.Option(help="end of the range (exclusive); default: the checkpoint")] = None,
    agency: Annotated[str | None, typer.Option(help="filter: actor agency")] = None,
    purpose: Annotated[str | None, typer.Option(help="filter: declared purpose")] = None,
    since: Annotated[str | None, typer.Option(help="filter: from this UTC time (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="filter: before this UTC time (ISO 8601)")] = None,
    subject_id: Annotated[str | None, typer.Option(help="filter: a resident's ID number (pseudonymised)")] = None,
) -> None:
    """Write an auditor bundle: a range with consistency proofs, or a filter with inclusion proofs."""
    with evidence() as ev:
        if any(v is not None for v in (agency, purpose, since, until, subject_id)):
            subject = ev.pseudonym(subject_id) if subject_id else None
            selection = EntryFilter(since=since, until=until, agency=agency, purpose=purpose, subject=subject)
            bundle = ev.export_filtered(out_dir, selection)
        else:
            bundle = ev.export(out_dir, start, end)
        out.print(f"bundle written to {bundle}; verify with:", highlight=False)
        out.print(f"  python -m audit.verify {bundle} --key '{ev.verifier_keys()[0]}'", highlight=False, soft_wrap=True)


@app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="bundle directory")],
    state: Annotated[Path | None, typer.Option(help="auditor state file (updated on success)")] = None,
) -> None:
    """Verify a bundle with this hub's own key (auditors run python -m audit.verify with the pinned key)."""
    with evidence() as ev:
        args = [str(bundle), "--key", ev.verifier_keys()[0]] + (["--state", str(state)] if state else [])
    raise typer.Exit(verify_main(args))


@app.command("witness")
def witness(
    state: Annotated[Path, typer.Option(help="the witness's state file")] = Path("var/witness/state.json"),
    key_file: Annotated[Path, typer.Option(help="the witness's Ed25519 key (PEM; created if missing)")] = Path(
        "var/witness/key.pem"
    ),
    name: Annotated[str, typer.Option(help="the witness's key name")] = "witness.local/w1",
) -> None:
    """Witness this hub's latest checkpoint: cosign it only if it extends what the witness holds."""
    with evidence() as ev:
        try:
            note, line, witness = witness_latest(ev, name, key_file, state)
        except SizeConflict as conflict:
            raise typer.BadParameter(str(conflict)) from None
        out.print(note + line, end="", highlight=False)
        out.print(f"witness key: {witness.verifier.encode()}", highlight=False)
