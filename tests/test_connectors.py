"""Connectors and the bus end to end, on the embedded log and on Kafka (Tansu)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request  # at module level: a test route's annotations are resolved here
from sqlmodel import Session, select

from connectors.bus.select import open_bus
from connectors.config import default_directory
from connectors.deadletters import list_dead_letters, replay
from connectors.pipeline import Pipeline, places
from connectors.runner import ConnectorRunner, ConnectorStopped
from connectors.tables import DeadLetter
from connectors.workers import Workers
from hub.settings import Settings, load_settings
from hub.synthetic import SourceManifest, generate_population, generate_sources
from hub.synthetic.generate import DEFAULT_AS_OF

RESIDENTS = 400
SEED = 77


@dataclass
class Env:
    settings: Settings
    pipeline: Pipeline
    manifest: SourceManifest
    connectors_dir: Path
    overrides: dict[str, str]


def _connectors_dir(tmp_path: Path, batch_size: int) -> Path:
    """The shipped connector files with small batches and pages, so a run has many checkpoints to crash between."""
    target = tmp_path / "agencies"
    shutil.copytree(default_directory(), target)
    for path in target.glob("*.toml"):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("page_size")]
        text = "\n".join(lines).replace("\n[fields]", f"\nbatch_size = {batch_size}\npage_size = 10\n\n[fields]", 1)
        path.write_text(text + "\n", encoding="utf-8")
    return target


def _build(overrides: dict[str, str], connectors_dir: Path) -> tuple[Settings, Pipeline]:
    settings = load_settings(**overrides)
    return settings, Pipeline.from_settings(settings, connectors_dir)


@pytest.fixture(params=[("local", 0), ("local", 2), ("kafka", 2)], ids=["local", "local-2-workers", "kafka-2-workers"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    bus, workers = request.param
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "11" * 32, "connector_workers": str(workers)}
    if bus == "kafka":
        overrides |= {
            "bus": "kafka",
            "kafka_bootstrap_servers": request.getfixturevalue("kafka_bootstrap"),
            "kafka_namespace": f"t{uuid.uuid4().hex[:8]}.",
        }
    manifest = generate_sources(tmp_path / "var" / "sources", residents=RESIDENTS, seed=SEED)
    connectors_dir = _connectors_dir(tmp_path, 60)
    settings, pipeline = _build(overrides, connectors_dir)
    yield Env(settings, pipeline, manifest, connectors_dir, overrides)
    pipeline.bus.close()


def _dirty_keys(manifest: SourceManifest) -> dict[str, set[str]]:
    by_source = {"police": "police.incident", "health": "health.visit", "education": "education.campus_incident"}
    keys: dict[str, set[str]] = {}
    for entry in manifest.dirty_records:
        dataset = by_source.get(entry["source"]) or (
            "civil_affairs.vulnerable_person"
            if entry["position"].startswith("registry")
            else "civil_affairs.access_event"
        )
        keys.setdefault(dataset, set()).add(entry["position"].rsplit("=", 1)[1])
    return keys


def assert_store_holds_exactly_the_valid_records(env: Env) -> None:
    dirty = _dirty_keys(env.manifest)
    store = env.pipeline.store
    for source in env.manifest.sources:
        assert store.count(source.dataset) == source.records - source.dirty, source.dataset
        with store.engine.connect() as connection:
            from sqlalchemy import text

            keys = {
                k
                for (k,) in connection.execute(
                    text("SELECT record_key FROM record WHERE dataset_id = :d"), {"d": source.dataset}
                )
            }
        assert not keys & dirty.get(source.dataset, set())
    letters = list_dead_letters(store.engine)
    by_dataset: dict[str, int] = {}
    for letter in letters:
        by_dataset[letter.dataset] = by_dataset.get(letter.dataset, 0) + 1
    assert by_dataset == {s.dataset: s.dirty for s in env.manifest.sources if s.dirty}


def _everything_on_the_bus(env: Env) -> bytes:
    if env.settings.bus == "local":
        return b"".join(p.read_bytes() for p in (env.settings.var_dir / "bus").rglob("*.log"))
    topics = sorted(
        {f"hub.records.{s.dataset}" for s in env.manifest.sources}
        | {f"hub.dlq.{s.dataset}" for s in env.manifest.sources}
    )
    consumer = env.pipeline.bus.consumer(f"scan-{uuid.uuid4().hex[:6]}", topics)
    chunks, idle = [], 0
    while idle < 3:
        messages = consumer.poll(max_records=5000, timeout=1.0)
        idle = 0 if messages else idle + 1
        chunks += [m.key + m.value for m in messages]
    consumer.close()
    return b"".join(chunks)


def test_end_to_end_exact_counts_updates_tombstones_and_no_plaintext(env: Env) -> None:
    reports = env.pipeline.run(env.settings)
    assert {r.connector for r in reports} == {s.dataset for s in env.manifest.sources}
    assert all(r.dropped for r in reports)  # every source carries uncatalogued columns, all dropped
    env.pipeline.materialise(idle_seconds=1.0)
    assert_store_holds_exactly_the_valid_records(env)
    # A source update and a source deletion flow through as a newer version and a tombstone.
    police = env.settings.var_dir / "sources" / "police" / "police.db"
    with env.pipeline.store.engine.connect() as connection:
        from sqlalchemy import text

        updated, deleted = connection.execute(
            text("SELECT record_key FROM record WHERE dataset_id = 'police.incident' ORDER BY record_key LIMIT 2")
        ).scalars()
    with sqlite3.connect(police) as db:
        db.execute("UPDATE bj_alarm SET zt = '1', last_modified = '2026-11-20 07:59:59' WHERE alarm_no = ?", (updated,))
        db.execute(
            "UPDATE bj_alarm SET is_deleted = 1, last_modified = '2026-11-20 07:59:59' WHERE alarm_no = ?", (deleted,)
        )
    before = env.pipeline.store.get("police.incident", updated)
    env.pipeline.run(env.settings, ["police"])
    env.pipeline.materialise(idle_seconds=1.0)
    after = env.pipeline.store.get("police.incident", updated)
    assert before is not None and after is not None and after.version > before.version
    assert after.clear_fields["status"] == "closed"
    gone = env.pipeline.store.get("police.incident", deleted)
    assert gone is not None and gone.deleted
    # No resident's ID number, phone or name appears anywhere on the bus or in the store, in any encoding.
    people = generate_population(RESIDENTS, SEED, DEFAULT_AS_OF)
    haystacks = [_everything_on_the_bus(env)]
    env.pipeline.store.engine.dispose()
    haystacks += [p.read_bytes() for p in env.settings.var_dir.glob("hub.db*")]
    needles = [p.id_number for p in people] + [p.phone for p in people] + [p.name for p in people]
    hits = [n for n in needles for hay in haystacks if n.encode() in hay or json.dumps(n).encode()[1:-1] in hay]
    assert hits == []


def test_dead_letters_replay_after_a_mapping_fix(tmp_path: Path) -> None:
    generate_sources(tmp_path / "var" / "sources", residents=RESIDENTS, seed=SEED)
    connectors_dir = _connectors_dir(tmp_path, 500)
    police = connectors_dir / "police.incident.toml"
    police.write_text(police.read_text(encoding="utf-8").replace(', "其他" = "other"', ""), encoding="utf-8")
    settings, pipeline = _build({"var_dir": str(tmp_path / "var"), "master_key": "22" * 32}, connectors_dir)
    pipeline.run(settings, ["police"])
    letters = [d for d in list_dead_letters(pipeline.store.engine) if "no mapping" in d.reason]
    assert letters and all("其他" not in d.reason for d in letters)  # reasons never echo values
    police.write_text(
        police.read_text(encoding="utf-8").replace(
            '"家庭暴力" = "domestic_violence"', '"家庭暴力" = "domestic_violence", "其他" = "other"'
        ),
        encoding="utf-8",
    )
    settings, pipeline = _build({"var_dir": str(tmp_path / "var"), "master_key": "22" * 32}, connectors_dir)
    config = pipeline.configs["police.incident"]
    with places(settings, [config]) as where:
        replayed, failing, _ = replay(
            ConnectorRunner(
                config.resolve(**where), pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
            )
        )
    assert replayed == len(letters) and failing >= 1  # the planted dirty rows still fail
    pipeline.materialise(idle_seconds=0.3)
    assert (
        pipeline.store.count("police.incident")
        == sum(1 for _ in sqlite3.connect(tmp_path / "var/sources/police/police.db").execute("SELECT 1 FROM bj_alarm"))
        - failing
    )
    with Session(pipeline.store.engine) as session:
        done = session.exec(select(DeadLetter).where(DeadLetter.status == "replayed")).all()
    assert len(done) == replayed and all(d.sealed_row == b"" for d in done)


def test_sql_rows_without_a_watermark_are_dead_letters_until_the_source_dates_them(tmp_path: Path) -> None:
    """No pull can reach a row whose watermark is NULL: each pull says so with one dead letter a row."""
    manifest = generate_sources(tmp_path / "var" / "sources", residents=120, seed=SEED)
    police = next(s for s in manifest.sources if s.dataset == "police.incident")
    dirty = _dirty_keys(manifest).get("police.incident", set())
    with sqlite3.connect(tmp_path / "var/sources/police/police.db") as db:  # the same table, NULL allowed
        (schema,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'bj_alarm'").fetchone()
        db.execute("ALTER TABLE bj_alarm RENAME TO bj_alarm_old")
        db.execute(schema.replace("last_modified TEXT NOT NULL", "last_modified TEXT"))
        db.execute("INSERT INTO bj_alarm SELECT * FROM bj_alarm_old")
        db.execute("DROP TABLE bj_alarm_old")
        live = [k for (k,) in db.execute("SELECT alarm_no FROM bj_alarm WHERE is_deleted = 0 ORDER BY alarm_no")]
        undated = [k for k in live if k not in dirty][:: len(live) // 4][:3]  # the table's first row among them
        db.executemany("UPDATE bj_alarm SET last_modified = NULL WHERE alarm_no = ?", [(k,) for k in undated])
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "55" * 32, "connector_workers": "2"}
    settings, pipeline = _build(overrides, _connectors_dir(tmp_path, 40))

    def watermark_letters() -> list[str]:
        letters = [d for d in list_dead_letters(pipeline.store.engine) if d.connector == "police.incident"]
        assert len(letters) == police.dirty + len(undated)  # the planted dirty rows, and one a row for these
        return sorted(d.position for d in letters if "watermark column last_modified is empty" in d.reason)

    for _ in range(2):  # a second pull finds them again, and adds no letter
        (report,) = pipeline.run(settings, ["police"])
        pipeline.materialise(idle_seconds=0.3)
        assert watermark_letters() == [f"bj_alarm.alarm_no={k}" for k in undated]
        assert pipeline.store.count("police.incident") == police.records - police.dirty - len(undated)
    assert report.dead_letters == len(undated)  # nothing else was new, and these are reported every pull
    with sqlite3.connect(tmp_path / "var/sources/police/police.db") as db:
        db.execute("UPDATE bj_alarm SET last_modified = '2099-01-01 00:00:00' WHERE last_modified IS NULL")
    (report,) = pipeline.run(settings, ["police"])
    pipeline.materialise(idle_seconds=0.3)
    assert report.rows == len(undated) and report.dead_letters == 0
    assert pipeline.store.count("police.incident") == police.records - police.dirty
    # Their letters have nothing left to give: a replay closes them as superseded and publishes nothing.
    config = pipeline.configs["police.incident"]
    with places(settings, [config]) as where:
        runner = ConnectorRunner(
            config.resolve(**where), pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
        )
        assert replay(runner) == (0, police.dirty, len(undated))
    assert [d for d in list_dead_letters(pipeline.store.engine) if "watermark" in d.reason] == []
    with Session(pipeline.store.engine) as session:
        closed = session.exec(select(DeadLetter).where(DeadLetter.status == "superseded")).all()
    assert sorted(d.position for d in closed) == [f"bj_alarm.alarm_no={k}" for k in undated]
    assert all(d.sealed_row == b"" for d in closed)
    pipeline.bus.close()


def test_sql_rows_without_a_key_are_dead_letters_and_cost_no_other_row(tmp_path: Path) -> None:
    """A row whose key is NULL cannot be ordered or named by its key: it must neither end a batch (the
    next batch, "after (watermark, NULL)", would skip every row sharing that watermark) nor slip into a
    batch under the name "key=None". Each pull hands it on as one dead letter, named by its watermark."""
    manifest = generate_sources(tmp_path / "var" / "sources", residents=120, seed=SEED)
    police = next(s for s in manifest.sources if s.dataset == "police.incident")
    dirty = _dirty_keys(manifest).get("police.incident", set())
    with sqlite3.connect(tmp_path / "var/sources/police/police.db") as db:
        # SQLite lets a TEXT PRIMARY KEY hold NULL (an old quirk it keeps), so the table stays as it is.
        in_order = "SELECT alarm_no FROM bj_alarm WHERE is_deleted = 0 ORDER BY last_modified, alarm_no"
        ordered = [k for (k,) in db.execute(in_order)]
        clean = [k for k in ordered if k not in dirty]
        keyless = [clean[4], clean[9], clean[10]]  # at the first batch ends (batches of 5)
        # Two of them share a watermark with their neighbours, the third with the second: ties the pull
        # must still take in full, and two letters that differ only by their place among the keyless.
        for k in keyless:
            db.execute(
                "UPDATE bj_alarm SET last_modified = (SELECT last_modified FROM bj_alarm WHERE alarm_no = ?) "
                "WHERE alarm_no = ?",
                (clean[clean.index(k) + 1], k),
            )
        db.execute(
            "UPDATE bj_alarm SET last_modified = (SELECT last_modified FROM bj_alarm WHERE alarm_no = ?) "
            "WHERE alarm_no = ?",
            (keyless[1], keyless[2]),
        )
        marks = {k: m for k, m in db.execute("SELECT alarm_no, last_modified FROM bj_alarm")}
        db.executemany("UPDATE bj_alarm SET alarm_no = NULL WHERE alarm_no = ?", [(k,) for k in keyless])
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "56" * 32, "connector_workers": "2"}
    settings, pipeline = _build(overrides, _connectors_dir(tmp_path, 5))
    for _ in range(2):  # a second pull finds them again, and adds no letter
        (report,) = pipeline.run(settings, ["police"])
        pipeline.materialise(idle_seconds=0.3)
        letters = [d for d in list_dead_letters(pipeline.store.engine) if d.connector == "police.incident"]
        assert len(letters) == police.dirty + len(keyless)
        keyed = sorted(d.position for d in letters if "key column alarm_no is empty" in d.reason)
        assert keyed == sorted(
            [
                f"bj_alarm.alarm_no=NULL@{marks[keyless[0]]}#1",
                f"bj_alarm.alarm_no=NULL@{marks[keyless[1]]}#1",
                f"bj_alarm.alarm_no=NULL@{marks[keyless[1]]}#2",
            ]
        )
        assert pipeline.store.count("police.incident") == police.records - police.dirty - len(keyless)
    assert report.dead_letters == len(keyless)  # nothing else was new, and these are reported every pull
    # Replay cannot name them either: they stay open, still saying why.
    config = pipeline.configs["police.incident"]
    with places(settings, [config]) as where:
        runner = ConnectorRunner(
            config.resolve(**where), pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
        )
        assert replay(runner) == (0, police.dirty + len(keyless), 0)
    assert len([d for d in list_dead_letters(pipeline.store.engine) if "key column" in d.reason]) == len(keyless)
    pipeline.bus.close()


CHILD = """
import json, sys
from pathlib import Path
from typing import Any
sys.path.insert(0, {root!r})
from tests.test_connectors import _build
overrides = json.loads(sys.argv[1])
settings, pipeline = _build(overrides, Path(sys.argv[2]))
if sys.argv[3] == "connectors":
    pipeline.run(settings, progress=lambda r: print(r.rows, flush=True))
else:
    pipeline.materialise(progress=lambda n: print(n, flush=True), idle_seconds=2.0, batch=40)
print("done", flush=True)
"""


def _kill_after(env: Env, mode: str, lines: int) -> None:
    code = CHILD.format(root=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(env.overrides), str(env.connectors_dir), mode],
        stdout=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
    )
    assert process.stdout is not None
    for _ in range(lines):
        line = process.stdout.readline()
        assert line and line != "done\n", "the child finished before it could be killed"
    workers = _children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # Worker processes do not outlive their connector process.
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def _children(pid: int) -> list[int]:
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def test_sigkill_of_the_connector_mid_run_loses_and_duplicates_nothing(env: Env) -> None:
    _kill_after(env, "connectors", 5)
    settings, pipeline = _build(env.overrides, env.connectors_dir)
    pipeline.run(settings)
    pipeline.materialise(idle_seconds=1.0)
    env.pipeline = pipeline
    assert_store_holds_exactly_the_valid_records(env)
    pipeline.bus.close()


def test_sigkill_of_the_materialiser_mid_batch_loses_and_duplicates_nothing(env: Env) -> None:
    env.pipeline.run(env.settings)
    _kill_after(env, "materialise", 3)
    _settings, pipeline = _build(env.overrides, env.connectors_dir)
    pipeline.materialise(idle_seconds=1.0)
    env.pipeline = pipeline
    assert_store_holds_exactly_the_valid_records(env)
    pipeline.bus.close()


def test_rest_source_backs_off_on_429_and_5xx_then_gives_up(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from connectors.config import ConnectorConfig
    from connectors.sources.rest import RestSource, SourceUnavailable
    from hub.synthetic.serve import serve_in_thread

    calls = {"n": 0}
    app = FastAPI()

    @app.get("/items")
    def items() -> JSONResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            return JSONResponse({}, status_code=429, headers={"Retry-After": "0"})
        if calls["n"] == 2:
            return JSONResponse({}, status_code=503)
        return JSONResponse({"items": [{"id": "1", "updatedAt": "2026-11-20T08:00:00+08:00"}], "has_more": False})

    @app.get("/down")
    def down() -> JSONResponse:
        return JSONResponse({}, status_code=502)

    with serve_in_thread(app) as base:
        fields = {"incident_no": {"from": "id"}}
        config = ConnectorConfig.model_validate(
            {
                "name": "t",
                "agency": "education",
                "system": "s",
                "dataset": "education.campus_incident",
                "kind": "rest",
                "url": f"{base}/items",
                "watermark": "updatedAt",
                "key": "id",
                "fields": fields,
                "max_retries": 3,
            }
        )
        batches = list(RestSource(config, backoff=0.01).batches({}))
        assert calls["n"] == 3 and [r.values["id"] for r in batches[0].rows] == ["1"]
        broken = config.model_copy(update={"url": f"{base}/down", "max_retries": 2})
        with pytest.raises(SourceUnavailable, match="kept failing after 2 retries"):
            list(RestSource(broken, backoff=0.01).batches({}))


def test_a_rest_source_that_asks_for_signed_requests_gets_them(tmp_path: Path) -> None:
    """The source verifies with the RFC 9421 library itself, as an agency's API would."""
    import datetime as dt

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms
    from http_message_signatures.exceptions import HTTPMessageSignaturesException

    from connectors.config import ConnectorConfig, ConnectorConfigError
    from connectors.sources.rest import RestSource, SourceUnavailable
    from hub.httpsig import Message
    from hub.synthetic.serve import serve_in_thread

    key = Ed25519PrivateKey.generate()
    (tmp_path / "hub.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    seen: list[dict[str, object]] = []

    class Keys(HTTPSignatureKeyResolver):
        def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
            if key_id != "hub-to-education-1":
                raise InvalidSignature("unknown key")
            return key.public_key()

        def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
            raise InvalidSignature("a source signs nothing here")

    app = FastAPI()

    @app.get("/items")
    def items(request: Request) -> JSONResponse:
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=Keys())
        try:
            (result,) = verifier.verify(
                Message.of(request.method, str(request.url), request.headers.items()),
                max_age=dt.timedelta(seconds=300),
                require_components=["@method", "@target-uri"],
            )
        except (InvalidSignature, HTTPMessageSignaturesException, ValueError):
            return JSONResponse({}, status_code=401)
        seen.append(dict(result.parameters))
        return JSONResponse({"items": [{"id": "1", "updatedAt": "2026-11-20T08:00:00+08:00"}], "has_more": False})

    with serve_in_thread(app) as base:
        settings: dict[str, Any] = {
            "name": "t",
            "agency": "education",
            "system": "s",
            "dataset": "education.campus_incident",
        }
        settings |= {"kind": "rest", "url": f"{base}/items", "watermark": "updatedAt", "key": "id", "max_retries": 0}
        config = ConnectorConfig.model_validate(
            settings
            | {"fields": {"incident_no": {"from": "id"}}}
            | {"signing_key_file": str(tmp_path / "hub.pem"), "signing_key_id": "hub-to-education-1"}
        )
        (batch,) = list(RestSource(config).batches({}))
        assert [r.values["id"] for r in batch.rows] == ["1"]
        assert seen[0]["keyid"] == "hub-to-education-1" and seen[0]["alg"] == "ed25519" and seen[0]["nonce"]
        unsigned = config.model_copy(update={"signing_key_file": None, "signing_key_id": None})
        other = config.model_copy(update={"signing_key_id": "someone-else"})
        for refused in (unsigned, other):
            with pytest.raises(SourceUnavailable, match="HTTP 401"):
                list(RestSource(refused).batches({}))
    (tmp_path / "not-a-key.pem").write_text("not a key", encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="signing_key_file"):
        RestSource(config.model_copy(update={"signing_key_file": str(tmp_path / "not-a-key.pem")}))
    with pytest.raises(ValueError, match="go together"):
        ConnectorConfig.model_validate(settings | {"fields": {}, "signing_key_id": "hub-to-education-1"})


def test_rest_items_without_a_key_or_watermark_are_dead_letters_and_the_page_goes_on(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, PlainTextResponse

    from connectors.config import ConnectorConfig
    from connectors.mapping import RecordRejected
    from connectors.sources.base import REFUSED, Row
    from connectors.sources.rest import RestSource, SourceUnavailable
    from hub.synthetic.serve import serve_in_thread

    def item(key: str, day: int) -> dict[str, str]:
        return {"id": key, "updatedAt": f"2026-11-{day:02d}T08:00:00+08:00"}

    pages: dict[int, list[Any]] = {
        1: [item("1", 1), {"updatedAt": "2026-11-02T08:00:00+08:00"}, {"id": "3", "updatedAt": None}],
        2: [item("6", 6)],
    }
    pages[1] += [{"id": 4, "updatedAt": "yesterday"}, "junk", item("5", 5)]
    app = FastAPI()

    @app.get("/items")
    def items(page: int) -> JSONResponse:  # the API's own filter ignored: the reader's must hold alone
        return JSONResponse({"items": pages[page], "has_more": page == 1})

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse("maintenance")

    @app.get("/list")
    def listing() -> JSONResponse:
        return JSONResponse([item("1", 1)])

    with serve_in_thread(app) as base:
        fields = {"incident_no": {"from": "id"}}
        config = ConnectorConfig.model_validate(
            {"name": "t", "agency": "education", "system": "s", "dataset": "education.campus_incident"}
            | {"kind": "rest", "url": f"{base}/items", "watermark": "updatedAt", "key": "id", "fields": fields}
        )
        batches = list(RestSource(config).batches({}))
        rows = [r for b in batches for r in b.rows]
        assert [r.position.split("#")[1] for r in rows] == [
            *("id=1", "page=1&item=1", "id=3", "id=4", "page=1&item=4", "id=5", "id=6")
        ]
        assert [r.rejected for r in rows] == [
            None,
            "the item has no usable key (id)",
            "the item's watermark (updatedAt) is missing or not an ISO 8601 time",
            "the item's watermark (updatedAt) is missing or not an ISO 8601 time",
            "the item is not a JSON object",
            None,
            None,
        ]
        assert rows[4].values == {"__malformed__": '"junk"'} and rows[2].version_source is None
        day5, day6 = item("5", 5)["updatedAt"], item("6", 6)["updatedAt"]
        assert [b.checkpoint for b in batches] == [{"watermark": day5, "key": "5"}, {"watermark": day6, "key": "6"}]
        # A later pull skips what it took, and hands on the rejected items again (one dead letter each).
        again = [r for b in RestSource(config).batches(batches[-1].checkpoint) for r in b.rows]
        assert [r.position for r in again] == [r.position for r in rows if r.rejected]
        for path in ("text", "list"):
            with pytest.raises(SourceUnavailable, match="not a JSON object with items"):
                list(RestSource(config.model_copy(update={"url": f"{base}/{path}"})).batches({}))

    _, pipeline = _build({"var_dir": str(tmp_path / "var"), "master_key": "44" * 32}, _connectors_dir(tmp_path, 50))
    runner = ConnectorRunner(config, pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine)
    letters = {letter["position"].split("#")[1]: letter for letter in runner.prepare(rows).letters}
    for row in rows:
        if row.rejected:
            letter = letters[row.position.split("#")[1]]
            assert letter["reason"] == f"education.campus_incident: {row.rejected}"
            kept = runner.unseal_row(DeadLetter(**letter))
            assert kept == {**row.values, REFUSED: row.rejected}  # sealed, with the reader's reason
            with pytest.raises(RecordRejected) as replayed:  # what a replay meets: the same refusal
                runner.protect_row(Row(row.position, kept), datetime.now(UTC))
            assert str(replayed.value) == letter["reason"]
    pipeline.bus.close()


def test_a_csv_row_with_a_stray_separator_is_a_dead_letter_and_the_file_goes_on(tmp_path: Path) -> None:
    generate_sources(tmp_path / "var" / "sources", residents=60, seed=SEED)
    drop = next((tmp_path / "var/sources/civil_affairs/inbox").glob("registry_*.csv"))
    lines = drop.read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    shifted = ["MZX1", *fields[1:4], "北京市,朝阳区", *fields[5:]]  # an address's comma left unquoted
    drop.write_text("\n".join([*lines, ",".join(shifted), ",".join(["MZX2", *fields[1:7]])]) + "\n", encoding="utf-8")
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "77" * 32, "connector_workers": "2"}
    settings, pipeline = _build(overrides, _connectors_dir(tmp_path, 500))
    (report,) = pipeline.run(settings, ["civil_affairs.vulnerable_person"])  # this raised TypeError before
    pipeline.materialise(idle_seconds=0.3)
    letters = {d.position: d.reason for d in list_dead_letters(pipeline.store.engine)}
    width = len(lines[0].split(","))
    assert letters[f"{drop.name}:{len(lines) + 1}"].endswith(f"the row has {width + 1} fields, the header {width}")
    assert letters[f"{drop.name}:{len(lines) + 2}"].endswith(f"the row has 7 fields, the header {width}")
    assert report.rows == len(lines) + 1 and report.published + report.dead_letters == report.rows  # none lost
    assert (drop.parent.parent / "processed" / drop.name).exists()
    # No mapping fix mends a shifted row: a replay refuses it again, for the same reason, and takes nothing in.
    config = pipeline.configs["civil_affairs.vulnerable_person"]
    with places(settings, [config]) as where:
        runner = ConnectorRunner(
            config.resolve(**where), pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
        )
        replay(runner)
    after = {d.position: d.reason for d in list_dead_letters(pipeline.store.engine)}
    shifted = [f"{drop.name}:{len(lines) + 1}", f"{drop.name}:{len(lines) + 2}"]
    assert [after[p] for p in shifted] == [letters[p] for p in shifted]
    pipeline.materialise(idle_seconds=0.3)
    assert pipeline.store.get("civil_affairs.vulnerable_person", "MZX1") is None
    pipeline.bus.close()


def _police_pipeline(tmp_path: Path) -> tuple[Any, Settings, Pipeline]:
    """Generated sources of 60 residents, a pipeline over them (batches of 40), and the police source's manifest."""
    manifest = generate_sources(tmp_path / "var" / "sources", residents=60, seed=SEED)
    police = next(s for s in manifest.sources if s.dataset == "police.incident")
    settings, pipeline = _build(
        {"var_dir": str(tmp_path / "var"), "master_key": "99" * 32}, _connectors_dir(tmp_path, 40)
    )
    return police, settings, pipeline


def test_a_message_the_materialiser_cannot_apply_is_a_dead_letter_and_the_rest_go_in(tmp_path: Path) -> None:
    from connectors.bus.base import records_topic
    from connectors.envelope import to_event
    from hub.store import ProtectedRecord
    from hub.store.records import Provenance

    police, settings, pipeline = _police_pipeline(tmp_path)
    topic = records_topic("police.incident")
    provenance = Provenance("police", "x", "p:1", datetime.now(UTC), None)

    def event(dataset: str, clear: dict[str, Any]) -> tuple[bytes, bytes]:
        return to_event(ProtectedRecord(dataset, "K1", 1, provenance, b"\x01" * 32, clear, b"", False))

    pipeline.bus.publish(topic, [(b"k0", b"not an event")])  # before the connector's records, and after
    (report,) = pipeline.run(settings, ["police"])
    pipeline.bus.publish(topic, [event("police.incident", {"caller_name": "in clear"}), event("nope.x", {})])
    assert pipeline.materialise(idle_seconds=0.3) == report.published  # not stuck at the first bad message
    assert pipeline.store.count("police.incident") == police.records - police.dirty
    letters = [d for d in list_dead_letters(pipeline.store.engine) if d.connector == "materialiser"]
    assert sorted(d.reason for d in letters) == [
        "not applied: malformed record event: JSONDecodeError",
        "not applied: police.incident.caller_name is personal and must be sealed, not stored in clear",
        "not applied: unknown dataset 'nope.x'",
    ]
    assert all(d.position.startswith(f"{topic}/") and d.dataset == topic for d in letters)
    assert pipeline.materialise(idle_seconds=0.3) == 0  # the offsets moved past them
    assert len([d for d in list_dead_letters(pipeline.store.engine) if d.connector == "materialiser"]) == 3
    pipeline.bus.close()


def test_a_materialiser_on_an_older_catalog_leaves_letters_that_a_replay_takes_in(tmp_path: Path) -> None:
    from connectors.bus.base import records_topic
    from connectors.materialiser import materialise, replay_letters
    from hub.catalog import load_catalog
    from hub.catalog.loader import default_catalog_dir
    from hub.store import RecordStore

    police, settings, pipeline = _police_pipeline(tmp_path)
    topic = records_topic("police.incident")
    (report,) = pipeline.run(settings, ["police"])
    pipeline.bus.publish(topic, [(b"k0", b"not an event")])
    # A rolling upgrade: the connectors publish a dataset that the materialiser's catalog does not know yet.
    older = tmp_path / "older-catalog"
    shutil.copytree(default_catalog_dir(), older)
    (older / "police.incident.toml").unlink()
    stale = RecordStore(pipeline.store.engine, load_catalog(older))
    assert materialise(pipeline.bus, stale, [topic], idle_seconds=0.3) == 0
    letters = [d for d in list_dead_letters(pipeline.store.engine) if d.connector == "materialiser"]
    assert len(letters) == report.published + 1
    assert pipeline.store.count("police.incident") == 0
    # Upgraded: the letters' messages are read again from their offsets and go in; the bad one stays open.
    assert replay_letters(pipeline.bus, pipeline.store) == (report.published, 1)
    assert pipeline.store.count("police.incident") == police.records - police.dirty
    (still,) = [d for d in list_dead_letters(pipeline.store.engine) if d.connector == "materialiser"]
    assert still.reason == "not applied: malformed record event: JSONDecodeError"
    replayed = list_dead_letters(pipeline.store.engine, status="replayed")
    assert len(replayed) == report.published and {d.connector for d in replayed} == {"materialiser"}
    assert replay_letters(pipeline.bus, pipeline.store) == (0, 1)  # done with; the materialiser's offsets moved on
    assert pipeline.materialise(idle_seconds=0.3) == 0
    pipeline.bus.close()


def test_half_written_files_are_not_read(tmp_path: Path) -> None:
    generate_sources(tmp_path / "var" / "sources", residents=60, seed=SEED)
    inbox = tmp_path / "var" / "sources" / "civil_affairs" / "inbox"
    partial = inbox / "access_events_20991231.jsonl.part"
    partial.write_text('{"event_id": "E1", "card_holder_id": "11010519491231002X"', encoding="utf-8")
    settings, pipeline = _build(
        {"var_dir": str(tmp_path / "var"), "master_key": "55" * 32}, _connectors_dir(tmp_path, 500)
    )
    pipeline.run(settings, ["civil_affairs.access_event"])
    assert partial.exists() and not list(inbox.glob("access_events_*.jsonl"))
    assert {p.name for p in (inbox.parent / "processed").iterdir()} >= {"access_events_20261119.jsonl"}


def test_a_clean_run_with_nothing_new_clears_the_last_error(tmp_path: Path) -> None:
    generate_sources(tmp_path / "var" / "sources", residents=60, seed=SEED)
    settings, pipeline = _build(
        {"var_dir": str(tmp_path / "var"), "master_key": "88" * 32}, _connectors_dir(tmp_path, 50)
    )
    pipeline.run(settings, ["police.incident"])
    runner = ConnectorRunner(
        pipeline.configs["police.incident"], pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
    )
    runner._save_checkpoint(runner.checkpoint(), "SourceUnavailable: the last run failed")
    pipeline.run(settings, ["police.incident"])  # nothing new to read
    assert runner.last_error() == ""
    pipeline.bus.close()


def test_connectors_run_together_and_one_failure_stops_no_other(tmp_path: Path) -> None:
    manifest = generate_sources(tmp_path / "var" / "sources", residents=120, seed=SEED)
    (tmp_path / "var" / "sources" / "health" / "health.db").write_bytes(b"not a database")
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "66" * 32, "connector_workers": "2"}
    settings, pipeline = _build(overrides, _connectors_dir(tmp_path, 40))
    with pytest.raises(Exception, match="not a database"):
        pipeline.run(settings)
    pipeline.materialise(idle_seconds=0.5)
    runners = {
        c.name: ConnectorRunner(c, pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine)
        for c in pipeline.configs.values()
    }
    assert "not a database" in runners["health.visit"].last_error()
    for source in manifest.sources:
        if source.dataset == "health.visit":
            assert pipeline.store.count(source.dataset) == 0
        else:  # every other connector ran to its end, in the same run
            assert pipeline.store.count(source.dataset) == source.records - source.dirty, source.dataset
            assert runners[source.dataset].last_error() == ""
    pipeline.bus.close()


def test_a_stopped_run_ends_after_its_current_batch_and_the_next_run_resumes(tmp_path: Path) -> None:
    manifest = generate_sources(tmp_path / "var" / "sources", residents=120, seed=SEED)
    overrides = {"var_dir": str(tmp_path / "var"), "master_key": "77" * 32, "connector_workers": "2"}
    settings, pipeline = _build(overrides, _connectors_dir(tmp_path, 3))
    config = pipeline.configs["police.incident"]
    stop = threading.Event()
    stop.set()
    with places(settings, [config]) as where, Workers(2, lambda: open_bus(settings)) as pool:
        runner = ConnectorRunner(
            config.resolve(**where), pipeline.catalog, pipeline.protector, pipeline.bus, pipeline.store.engine
        )
        with pytest.raises(ConnectorStopped):
            runner.run(workers=pool, stop=stop)
    assert runner.checkpoint() and "interrupted" in runner.last_error()
    pipeline.materialise(idle_seconds=0.5)
    (police,) = [s for s in manifest.sources if s.dataset == "police.incident"]
    assert police.records > 9
    # The batch delivered, and at most the two the workers were preparing meanwhile (at least once).
    assert 0 < pipeline.store.count("police.incident") <= 9
    pipeline.run(settings, ["police.incident"])
    pipeline.materialise(idle_seconds=0.5)
    assert pipeline.store.count("police.incident") == police.records - police.dirty
    assert runner.last_error() == ""
    pipeline.bus.close()
