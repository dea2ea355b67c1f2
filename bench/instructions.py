"""Instructions a person view executes, and the unprotected baseline's, counted by callgrind: repeatable.

This machine's clock drifts by 10-50% within minutes (the baseline's CPU a request was 0.41 ms one day and
0.5-0.8 ms the next), so a change of a few percent is lost in timed runs. ``valgrind --tool=callgrind``
counts instructions instead: the same code on the same world gives the same count within about 2%. The world
is built natively, then each endpoint runs ``--requests`` views in process (16 at a time, as
bench/person_view.py does) under callgrind, instrumented only around the measured loop, on a fresh copy of
the world. Needs Debian's ``valgrind``. Last line: one JSON object.

    python bench/instructions.py [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.officer_world import PURPOSE, officer_world  # noqa: E402
from bench.person_view import URL, call  # noqa: E402

BASELINE_PATH = "/baseline/person-view"


def build(folder: Path) -> None:
    _, found, token = officer_world(folder, 300, URL)
    ids = [{"id_number": i, "subject_index": s} for i, s in found]
    (folder / "world.json").write_text(json.dumps({"residents": ids, "token": token}))


def _app(folder: Path, endpoint: str) -> tuple[Any, list[bytes], str]:
    world = json.loads((folder / "world.json").read_text())
    os.environ.update({"HUB_VAR_DIR": str(folder), "HUB_DEV_IDP": "true", "HUB_API_PUBLIC_URL": URL})
    residents = world["residents"]
    if endpoint == "person_view":
        from hub.api.app import create_app
        from hub.settings import get_settings

        bodies = [json.dumps({"id_number": r["id_number"], "purpose": PURPOSE}).encode() for r in residents]
        return create_app(get_settings()), bodies, str(world["token"])
    from bench.baseline.api_baseline import create_app as create_baseline

    inner = create_baseline()

    async def baseline(scope: Any, receive: Any, send: Any) -> None:  # bench/person_view.call posts to the hub's path
        if scope["type"] == "http":
            scope = {**scope, "path": BASELINE_PATH, "raw_path": BASELINE_PATH.encode()}
        await inner(scope, receive, send)

    baseline.router = inner.router  # type: ignore[attr-defined]  # its lifespan, as call's caller expects
    bodies = [json.dumps({"subject_index": r["subject_index"]}).encode() for r in residents]
    return baseline, bodies, ""


async def _measure(folder: Path, endpoint: str, requests: int) -> None:
    app, bodies, token = _app(folder, endpoint)
    gate = asyncio.Semaphore(16)

    async def one(body: bytes) -> int:
        async with gate:
            return await call(app, body, token)

    switch = ["callgrind_control", "-i", "on", str(os.getpid())]
    async with app.router.lifespan_context(app):
        for body in bodies[:40]:  # warm up: compiled policy programs, caches, the first connections
            await call(app, body, token)
        subprocess.run(switch, check=True, capture_output=True)
        statuses = await asyncio.gather(*(one(bodies[i % len(bodies)]) for i in range(requests)))
        subprocess.run([*switch[:2], "off", switch[3]], check=True, capture_output=True)
    if set(statuses) != {200}:
        raise SystemExit(f"{endpoint}: unexpected statuses {sorted(set(statuses))}")


def count(world: Path, endpoint: str, requests: int) -> int:
    """Instructions per request of ``endpoint`` on a fresh copy of ``world``."""
    with tempfile.TemporaryDirectory(prefix="hub-bench-instr-") as scratch:
        copy = Path(scratch) / "world"
        shutil.copytree(world, copy)
        out = Path(scratch) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            str(copy),
            endpoint,
            str(requests),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{endpoint} under callgrind failed:\n{done.stderr[-2000:]}")
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"{endpoint}: callgrind reported no count")
        return int(found.group(1)) // requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--run", nargs=3, metavar=("WORLD", "ENDPOINT", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        folder, endpoint, requests = args.run
        asyncio.run(_measure(Path(folder), endpoint, int(requests)))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print(json.dumps({"skipped": "valgrind is not installed (Debian package valgrind)"}))
        return
    with tempfile.TemporaryDirectory(prefix="hub-bench-world-") as scratch:
        world = Path(scratch) / "world"
        build(world)
        result: dict[str, Any] = {name: count(world, name, args.requests) for name in ("baseline", "person_view")}
    result["instruction_ratio"] = round(result["person_view"] / result["baseline"], 2)
    result["requests"] = args.requests
    result["unit"] = "instructions per request"
    print(
        f"person view {result['person_view']:,}, baseline {result['baseline']:,} instructions a request",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
