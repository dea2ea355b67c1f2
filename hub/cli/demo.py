"""``hub demo``: the main job on embedded defaults, narrated step by step.

Today it generates the four agencies' source systems, reads each back through its own interface,
loads the catalog and prepares the store; later issues extend it until it runs the whole scenario.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, text

from audit.entries import EntryDraft
from connectors.pipeline import Pipeline
from hub.catalog import Catalog, load_catalog
from hub.cli.catalog import catalog_table
from hub.cli.connectors import reports_table, run_with_progress
from hub.cli.console import out
from hub.cli.demo_api import demo_api
from hub.evidence import Evidence, open_audit_log, operator_actor, shred_entry, witness_latest
from hub.policy import PolicyRuntime
from hub.protection import DEMO_PASSPHRASE, Erased, RecordProtector, open_key_service
from hub.settings import Settings
from hub.store import RecordStore, create_store_engine, init_schema
from hub.store.records import ProtectedRecord
from hub.synthetic import SourceManifest, generate_sources
from hub.synthetic.probe import probe_sources
from policies.agreements import Principal
from policies.decide import DecisionRequest, Emergency, PrincipalContext, RecordContext


def sources_table(manifest: SourceManifest, readable: dict[str, int]) -> Table:
    table = Table(title=f"Agency source systems (seed {manifest.seed}, as of {manifest.as_of})", title_justify="left")
    for column in ("agency", "interface", "dataset", "records", "read back", "dirty", "where"):
        table.add_column(column, justify="right" if column in ("records", "read back", "dirty") else "left")
    for source in manifest.sources:
        got = readable.get(source.dataset, 0)
        mark = "[green]" if got == source.records else "[red]"
        table.add_row(
            source.agency,
            source.interface,
            source.dataset,
            f"{source.records:,}",
            f"{mark}{got:,}[/]",
            str(source.dirty),
            source.location,
        )
    return table


DEMO_MARK = ".hub-demo"  # in the state folder: the demo made what is there, so the next run may empty it
# What a demo run leaves in the state folder (demos from before the mark existed left these alone).
_DEMO_FILES = {"audit-export", "audit-export-api", "bus", "sources", "witness", "keystore.json", "keystore.json.lock"}
_DEMO_PREFIXES = ("hub.db", "keys.db")


def fresh_demo_folder(var_dir: Path) -> None:
    """Start every demo from nothing: a second run on the first one's state re-read its sources after their
    checkpoints and met the resident it had crypto-shredded. A folder holding anything the demo does not
    make is refused rather than emptied: it may be a real hub's state."""
    if var_dir.exists():
        found = list(var_dir.iterdir())
        ours = (var_dir / DEMO_MARK).exists() or all(
            p.name in _DEMO_FILES or p.name.startswith(_DEMO_PREFIXES) for p in found
        )
        if found and not ours:
            raise SystemExit(
                f"error: {var_dir} holds state the demo did not make; set HUB_VAR_DIR to an empty folder for the demo"
            )
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    (var_dir / DEMO_MARK).write_text("made by 'hub demo': the next demo run empties this folder\n", encoding="utf-8")


def run_demo(settings: Settings, residents: int, seed: int) -> None:
    out.print(Panel.fit("[bold]hub demo[/] — cross-agency data sharing on embedded defaults", border_style="cyan"))
    fresh_demo_folder(settings.var_dir)
    sources_dir = settings.var_dir / "sources"
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out) as progress:
        task = progress.add_task(f"Generating {residents:,} residents and four agencies' systems", total=None)
        manifest = generate_sources(Path(sources_dir), residents=residents, seed=seed)
        progress.update(task, description="Reading every source back through its own interface")
        readable = probe_sources(Path(sources_dir))
        progress.update(task, description="Loading the catalog and preparing the store")
        catalog = load_catalog()
        engine = create_store_engine(settings.effective_database_url)
        init_schema(engine)
        RecordStore(engine, catalog).sync_catalog()
        progress.remove_task(task)
    out.print(sources_table(manifest, readable))
    out.print(catalog_table(catalog))
    population = ", ".join(f"{count:,} {group}" for group, count in manifest.population.items())
    out.print(f"Residents: {population}. Dirty records planted: {len(manifest.dirty_records)}.")
    out.print(
        f"Solitary elderly residents not out for 3+ days (for the welfare alert): "
        f"{len(manifest.expected_stay_in_alerts)}."
    )
    out.print(
        f"Store ready at [bold]{engine.url.render_as_string(hide_password=True)}[/]; sources under {sources_dir}."
    )
    if any(readable.get(s.dataset) != s.records for s in manifest.sources):
        raise SystemExit("a source did not read back completely")
    keys = open_key_service(settings, create=True)
    log = open_audit_log(settings, keys)
    try:
        evidence = Evidence(log, keys)
        evidence.append(
            EntryDraft(
                type="admin",
                actor=operator_actor(),
                detail={
                    "operation": "catalog.sync",
                    "catalog_digest": catalog.digest,
                    "datasets": len(catalog.datasets),
                },
            )
        )
        protector = demo_ingest(settings, catalog, engine, evidence)
        records = demo_protection(RecordStore(engine, catalog), protector, evidence)
        agreement_id = demo_policies(settings, catalog, evidence, protector, records[1])
        resident = str(protector.reveal(records[1], {"id_number"})["id_number"])
        demo_api(settings, resident, agreement_id)
        demo_audit(settings, evidence)
    finally:
        log.close()


def demo_ingest(settings: Settings, catalog: Catalog, engine: Engine, evidence: Evidence) -> RecordProtector:
    """Pull all four agencies through the connectors: protect, publish, dead-letter, materialise."""
    out.rule("[bold]Connectors[/]: four agencies onto the bus, protected, into the store")
    if settings.master_passphrase is None and settings.master_key is None:
        out.print(f"[yellow]dev profile: keystore unlocked with the built-in demo passphrase {DEMO_PASSPHRASE!r}[/]")
    protector = RecordProtector(evidence.keys, catalog)
    pipeline = Pipeline.open(settings, catalog, protector, engine)
    try:
        started = time.perf_counter()
        reports = run_with_progress(settings, pipeline, [])
        elapsed = time.perf_counter() - started
    finally:
        pipeline.bus.close()
    out.print(reports_table(reports))
    rows = sum(r.rows for r in reports)
    status = protector.keys.status()
    out.print(
        f"{rows:,} rows in {elapsed:.1f} s on the {pipeline.bus.name} ({rows / elapsed:,.0f}/s): "
        f"personal fields sealed under {status.data_keys:,} per-resident keys ({status.suite}); "
        "dead letters sealed and listed by 'hub connectors dlq list'; "
        "nothing personal in clear on the bus or in the store."
    )
    return protector


def demo_protection(store: RecordStore, protector: RecordProtector, evidence: Evidence) -> list[ProtectedRecord]:
    """Show a stored registry record with its default masks, then crypto-shred that resident."""
    out.rule("[bold]Keys[/]: per-resident envelope encryption, masking, crypto-shredding")
    with store.engine.connect() as connection:
        keys = (
            connection.execute(
                text(
                    "SELECT record_key FROM record WHERE dataset_id = :d AND deleted = :no ORDER BY record_key LIMIT 2"
                ),
                {"d": "civil_affairs.vulnerable_person", "no": False},
            )
            .scalars()
            .all()
        )
    records = [r for r in (store.get("civil_affairs.vulnerable_person", k) for k in keys) if r is not None]
    sample = records[0]
    table = Table(title=f"{sample.dataset_id} {sample.record_key}: default masks", title_justify="left")
    table.add_column("field")
    table.add_column("shown")
    table.add_column("stored as")
    sealed = set(protector.masked(sample)) - set(sample.clear_fields)
    for field, shown in protector.masked(sample).items():
        table.add_row(field, str(shown), "[red]ciphertext[/]" if field in sealed else "clear (non-personal)")
    out.print(table)
    resident_id = str(protector.reveal(sample, {"id_number"})["id_number"])
    receipt = protector.keys.shred(sample.subject_index)
    evidence.append(shred_entry(receipt, operator_actor(), evidence.pseudonym(resident_id)))
    erased = protector.reveal(sample)
    gone = sum(isinstance(v, Erased) for v in erased.values())
    out.print(
        f"Crypto-shredded that resident: data key {receipt.dek_id[:12]}… destroyed at {receipt.shredded_at}; "
        f"{gone} personal fields now read as erased, everywhere they were copied."
    )
    return records


def demo_audit(settings: Settings, evidence: Evidence) -> None:
    """Checkpoint the log, have a witness cosign it, export a bundle and verify it as an auditor would."""
    out.rule("[bold]Audit[/]: append-only Merkle log, signed checkpoints, witness, offline verification")
    current = evidence.current_checkpoint()
    out.print(f"Log {current['origin']} holds {current['size']:,} entries; signed checkpoint:")
    out.print(current["note"], end="", highlight=False, style="dim")
    witness_dir = settings.var_dir / "witness"
    _, line, _ = witness_latest(
        evidence, "witness.demo/civil-affairs", witness_dir / "key.pem", witness_dir / "state.json"
    )
    out.print(f"Witness cosigned it: {line.strip()[:72]}…", highlight=False)
    bundle = evidence.export(settings.var_dir / "audit-export")
    command = [sys.executable, "-m", "audit.verify", str(bundle), "--key", evidence.verifier_keys()[0]]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own verifier
    colour = "green" if result.returncode == 0 else "red"
    out.print(f"Auditor runs python -m audit.verify {bundle} --key …:", highlight=False)
    out.print(f"[{colour}]{result.stdout.strip()}[/]", highlight=False)
    if result.returncode != 0:
        raise SystemExit("the offline verifier rejected the demo's own bundle")


def _shown(value: object) -> str:
    return "—" if value is None else ", ".join(value) if isinstance(value, list) else str(value)


def demo_policies(
    settings: Settings, catalog: Catalog, evidence: Evidence, protector: RecordProtector, record: ProtectedRecord
) -> str:
    """An investigator with a case, the same officer without one, and a break-glass request, all audited."""
    out.rule("[bold]Policies[/]: roles (Casbin), need-to-know (Rego), agreements, break-glass")
    runtime = PolicyRuntime.open(settings, catalog, evidence)
    for principal, role, agency in (
        ("P-0042", "investigator", "police"),
        ("PA-1", "agency_admin", "police"),
        ("CA-1", "agency_admin", "civil_affairs"),
        ("H-7", "officer", "health"),
    ):
        runtime.roles.assign(principal, role, agency)
    now = int(time.time())
    agreement = runtime.agreements.request(
        Principal("PA-1", "police", "agency_admin"),
        provider="civil_affairs",
        dataset="civil_affairs.vulnerable_person",
        fields=["person_no", "name", "category", "address", "phone", "guardian_name", "guardian_phone", "community"],
        purposes=["fraud_investigation", "fraud_warning", "missing_person"],
        lawful_basis="statutory_duty",
        legal_citation="PIPL 13(3); People's Police Law art. 6",
        necessity="identify and protect vulnerable residents targeted by fraud or missing",
        valid_from=now - 60,
        valid_until=now + 180 * 86400,
    )
    civil_admin = Principal("CA-1", "civil_affairs", "agency_admin")
    runtime.agreements.approve(agreement.id, civil_admin)
    runtime.agreements.activate(agreement.id, civil_admin)
    out.print(
        f"Agreement {agreement.id}: police <- civil_affairs.vulnerable_person, statutory duty, approved and active."
    )
    values = protector.reveal(record)
    masked = protector.masked(record)
    context = RecordContext(
        record.dataset_id, "civil_affairs", str(values["district"]), False, evidence.pseudonym(str(values["id_number"]))
    )
    officer = PrincipalContext("P-0042", "police", "investigator", str(values["district"]), mfa=False)
    with_case = runtime.decisions.decide(
        DecisionRequest(officer, context, "fraud_investigation", case_id="CASE-2026-0417", case_assigned=True)
    )
    table = Table(title=f"Investigator P-0042, case CASE-2026-0417, {record.record_key}", title_justify="left")
    for column in ("field", "decision", "shown"):
        table.add_column(column)
    for field, outcome in sorted(with_case.fields.items()):
        shown = values.get(field) if outcome == "reveal" else masked.get(field) if outcome == "mask" else None
        colour = {"reveal": "green", "mask": "yellow", "deny": "red"}[outcome]
        table.add_row(field, f"[{colour}]{outcome}[/]", _shown(shown) if outcome != "deny" else "—")
    out.print(table)
    out.print(f"obligations: {', '.join(with_case.obligations)}")
    without = runtime.decisions.decide(DecisionRequest(officer, context, "fraud_investigation"))
    out.print(f"Same officer, no case: [red]refused[/] — {'; '.join(without.reasons)}")
    emergency = runtime.decisions.decide(
        DecisionRequest(
            PrincipalContext("H-7", "health", "officer", str(values["district"]), mfa=True),
            context,
            "missing_person",
            emergency=Emergency("resident with dementia missing since 06:00", now - 60, now + 4 * 3600 - 60),
        )
    )
    out.print(
        f"Health officer, no agreement, missing-person emergency: "
        f"{'[green]allowed[/]' if emergency.allow else '[red]refused[/]'} under break-glass; "
        f"obligations: {', '.join(emergency.obligations)}"
    )
    return agreement.id
