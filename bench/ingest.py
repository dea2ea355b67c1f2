"""Benchmark ingestion: synthetic sources -> connectors -> bus -> materialiser -> store, fully protected.

- End-to-end records/s for the four agencies' sources (10,000 residents, about 51,000 rows), on the
  embedded bus and on Kafka (a Tansu broker started here), with the materialiser in its own process
  running alongside the connectors, as deployed (the clock starts once it has started up). Baseline in
  the same run: a raw copy of the same rows, read by the same source readers, into the same database —
  no mapping, no encryption, no bus. Ratio = raw rate / pipeline rate.
- Memory: a 1,000,000-row SQL source (hospital visits of those residents, replicated under new keys)
  ingested by the connector in a child process on the embedded bus. Reported: that process's peak RSS
  (VmHWM) plus its largest worker process's (ru_maxrss), an upper bound since forked workers share pages.
- Connector workers: the machine's default (HUB_CONNECTOR_WORKERS unset: one per CPU, at most 8).
- Rounds: the raw copy and the embedded pipeline run in pairs, each pair back to back on fresh copies of
  the same sources, ``--rounds`` times (default 5); the ratio reported is the median of the pairs' ratios,
  with every pair's figures listed. This machine's speed drifts by 10-30% within a minute, so one pair
  alone says as much about the drift as about the pipeline; pairing keeps both sides of each ratio
  within seconds of each other, and the median keeps one slow moment from deciding the result.
- CPU, beside the goals: each round also reports the CPU seconds of both sides from the clock's start
  (the pipeline's: connector process, workers and materialiser) and their ratio: what the protection and
  the bus cost in work rather than in seconds. On this machine it swings about as much as elapsed time
  (3.95-7.67 a round on 2026-12-01), since the machine's speed moves CPU seconds too.
Goals: >= 10,000 records/s and ratio <= 2.5 on the embedded bus; peak RSS < 400 MB at 1,000,000 rows.
The last line is one JSON object.

    python bench/ingest.py [--rounds 5]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from connectors.bus.tansu import local_broker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from bench.ingest import build
overrides = json.loads(sys.argv[1])
settings, pipeline = build(overrides)
mode = sys.argv[2]
if mode == "materialise":
    done = Path(sys.argv[3])
    print("ready", flush=True)
    cpu = time.process_time()
    total, last = 0, time.monotonic()
    def applied(count):
        global last
        last = time.monotonic()
    # The end is when the last record was applied, not when the idle polls that follow it time out.
    while True:
        total += pipeline.materialise(applied, idle_seconds=0.3)
        if done.exists():
            total += pipeline.materialise(applied, idle_seconds=1.0)
            break
    print(json.dumps({{"applied": total, "finished_at": last, "cpu_seconds": time.process_time() - cpu}}), flush=True)
else:
    started = time.perf_counter()
    rows = sum(r.rows for r in pipeline.run(settings, sys.argv[3:]))
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
    import resource  # the worker processes, gone by now: the largest one's peak
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({{"rows": rows, "seconds": time.perf_counter() - started, "vmhwm_kb": int(hwm),
                      "workers_kb": workers_kb}}), flush=True)
"""


def build(overrides: dict[str, str]) -> tuple[object, object]:
    from connectors.pipeline import Pipeline
    from hub.settings import load_settings

    settings = load_settings(**overrides)
    return settings, Pipeline.from_settings(settings)


def child(overrides: dict[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), json.dumps(overrides), *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def pipeline_rate(overrides: dict[str, str], scratch: Path) -> dict[str, float]:
    settings, pipeline = build(overrides)
    done = scratch / f"done-{time.monotonic_ns()}"
    materialiser = child(overrides, "materialise", str(done))
    # A deployed materialiser is a running service: the clock starts once it is up, not while it imports.
    if materialiser.stdout is None or materialiser.stdout.readline().strip() != "ready":
        raise RuntimeError("the materialiser process did not start")
    started = time.monotonic()  # CLOCK_MONOTONIC: the materialiser process reads the same clock
    own, workers = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    rows = sum(r.rows for r in pipeline.run(settings))  # type: ignore[attr-defined]
    connectors_seconds = time.monotonic() - started
    # The worker processes have ended and been waited for by now; the materialiser has not.
    own, workers = _cpu(resource.RUSAGE_SELF) - own, _cpu(resource.RUSAGE_CHILDREN) - workers
    done.touch()
    out, _ = materialiser.communicate(timeout=600)
    finished = json.loads(out.strip().splitlines()[-1])
    seconds = max(finished["finished_at"], started + connectors_seconds) - started
    stored = sum(pipeline.store.count(d) for d in pipeline.catalog.datasets)  # type: ignore[attr-defined]
    pipeline.bus.close()  # type: ignore[attr-defined]
    return {
        "rows": rows,
        "stored": stored,
        "materialised": int(finished["applied"]),
        "seconds": round(seconds, 2),
        "records_per_s": round(rows / seconds),
        "connectors_records_per_s": round(rows / connectors_seconds),
        # CPU seconds, from the clock's start: the work done, beside the time it took.
        "cpu_seconds": round(own + workers + float(finished["cpu_seconds"]), 2),
        "cpu_connector_process": round(own, 2),
        "cpu_workers": round(workers, 2),
        "cpu_materialiser": round(float(finished["cpu_seconds"]), 2),
    }


def raw_copy_rate(overrides: dict[str, str]) -> dict[str, float]:
    """The same rows through the same readers into the same database, without mapping, protection or bus."""
    from connectors.pipeline import places
    from connectors.runner import make_source

    settings, pipeline = build(overrides)
    engine = pipeline.store.engine  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS raw_copy (dataset TEXT, position TEXT, row TEXT)")
    started, cpu, rows = time.perf_counter(), time.process_time(), 0
    configs = list(pipeline.configs.values())  # type: ignore[attr-defined]
    with places(settings, configs) as where:  # type: ignore[arg-type]
        for config in configs:
            for batch in make_source(config.resolve(**where)).batches({}):
                values = [(config.dataset, r.position, json.dumps(r.values, default=str)) for r in batch.rows]
                with engine.begin() as connection:
                    connection.exec_driver_sql("INSERT INTO raw_copy VALUES (?, ?, ?)", values)
                rows += len(values)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "records_per_s": round(rows / seconds),
        "cpu_seconds": round(time.process_time() - cpu, 2),
    }


def main() -> dict[str, object]:
    from hub.synthetic import generate_sources

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="raw-copy and embedded-pipeline pairs to run")
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        template = scratch / "template"
        generate_sources(template / "sources", residents=10_000)

        def fresh(name: str, **extra: str) -> dict[str, str]:
            shutil.copytree(template, scratch / name)
            return {"var_dir": str(scratch / name), "master_key": "44" * 32, **extra}

        pairs: list[dict[str, Any]] = []
        for round_ in range(1, args.rounds + 1):
            raw = raw_copy_rate(fresh(f"raw-{round_}"))
            local = pipeline_rate(fresh(f"local-{round_}"), scratch)
            ratio = round(raw["records_per_s"] / local["records_per_s"], 2)
            cpu_ratio = round(local["cpu_seconds"] / raw["cpu_seconds"], 2)
            pairs.append({"raw_copy": raw, "embedded_bus": local, "ratio": ratio, "cpu_ratio": cpu_ratio})
            print(
                f"round {round_}: raw copy {raw['rows']:,} rows in {raw['seconds']} s = {raw['records_per_s']:,}/s; "
                f"embedded bus {local['rows']:,} rows in {local['seconds']} s = {local['records_per_s']:,}/s "
                f"end to end; ratio {ratio}; CPU {local['cpu_seconds']} s against {raw['cpu_seconds']} s ({cpu_ratio}x)"
            )
        middle = sorted(pairs, key=lambda p: float(p["ratio"]))[len(pairs) // 2]
        raw, local = middle["raw_copy"], middle["embedded_bus"]
        with local_broker() as bootstrap:
            kafka = pipeline_rate(
                fresh("kafka", bus="kafka", kafka_bootstrap_servers=bootstrap, kafka_namespace="bench."), scratch
            )
        print(
            f"Kafka (Tansu): {kafka['rows']:,} rows in {kafka['seconds']} s = {kafka['records_per_s']:,}/s end to end"
        )

        big = fresh("million")
        health = Path(big["var_dir"]) / "sources" / "health" / "health.db"
        with sqlite3.connect(health) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM his_visit").fetchone()
            copies = -(-1_000_000 // count)
            for n in range(1, copies):
                db.execute(
                    "INSERT INTO his_visit SELECT visit_no || '-' || ?, patient_idcard, patient_name, hospital_name, "
                    "dept_name, icd10, diagnosis_name, reg_time, insurance_card_no, attending_doctor, update_time "
                    "FROM his_visit WHERE visit_no NOT LIKE '%-%'",
                    (str(n),),
                )
            (total,) = db.execute("SELECT COUNT(*) FROM his_visit").fetchone()
        process = child(big, "connectors", "health.visit")
        out, _ = process.communicate(timeout=1800)
        memory = json.loads(out.strip().splitlines()[-1])
        print(
            f"1,000,000-row source: {memory['rows']:,} rows through the connector in {memory['seconds']:.0f} s, "
            f"peak RSS {memory['vmhwm_kb'] / 1024:.0f} MB, its largest worker's {memory['workers_kb'] / 1024:.0f} MB"
        )
    ratios = [float(p["ratio"]) for p in pairs]
    results.update(
        raw_copy=raw,  # the median pair's
        embedded_bus=local,
        kafka=kafka,
        ratio_embedded=round(statistics.median(ratios), 2),
        ratio_embedded_rounds=ratios,
        # Not a goal: the pipeline's CPU (connector process, workers, materialiser) over the raw copy's, by
        # round. With both cores busy, the elapsed-time ratio is about half of it.
        cpu_ratio_embedded=round(statistics.median(float(p["cpu_ratio"]) for p in pairs), 2),
        cpu_ratio_embedded_rounds=[float(p["cpu_ratio"]) for p in pairs],
        rounds=pairs,
        ratio_kafka=round(raw["records_per_s"] / kafka["records_per_s"], 2),
        million_rows=total,
        # The connector's process and its largest worker together (workers fork from it and share pages,
        # so the sum overstates the real use: an upper bound).
        million_rows_peak_rss_mb=round((memory["vmhwm_kb"] + memory["workers_kb"]) / 1024, 1),
        million_rows_connector_rss_mb=round(memory["vmhwm_kb"] / 1024, 1),
        million_rows_worker_rss_mb=round(memory["workers_kb"] / 1024, 1),
        million_rows_records_per_s=round(memory["rows"] / memory["seconds"]),
    )
    results["goals_met"] = bool(
        local["records_per_s"] >= 10_000
        and float(str(results["ratio_embedded"])) <= 2.5
        and float(str(results["million_rows_peak_rss_mb"])) < 400
    )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
