"""The person view's CPU per request in one process, without HTTP: the hub's ASGI app called directly.

bench/api.py measures the served hub against its baseline; this one isolates the hub's own work per request
(token, roles, decisions, decryption, audit, response), which is what a change to that work moves. Old and new
code compare best in alternation: run this file from a checkout of each, in turn, a few times. Last line: one
JSON object.

    python bench/person_view.py [--requests 1500] [--concurrency 16] [--residents 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.officer_world import PURPOSE, check_release, officer_world  # noqa: E402

URL = "http://127.0.0.1:9"
Message = MutableMapping[str, Any]


async def call(app: Callable[..., Awaitable[None]], body: bytes, token: str, answer: bytearray | None = None) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/officer/person-view",
        "raw_path": b"/v1/officer/person-view",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 9),
    }
    delivered = False
    status: list[int] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
        elif answer is not None and message["type"] == "http.response.body":
            answer.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status[0]


async def measure(requests: int, concurrency: int, residents: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-view-"))
    _, found, token = officer_world(folder, residents, URL)
    ids = [id_number for id_number, _ in found]
    os.environ.update({"HUB_VAR_DIR": str(folder), "HUB_DEV_IDP": "true", "HUB_API_PUBLIC_URL": URL})
    from hub.api.app import create_app
    from hub.settings import get_settings

    app = create_app(get_settings())
    bodies = [json.dumps({"id_number": i, "purpose": PURPOSE}).encode() for i in ids]
    gate = asyncio.Semaphore(concurrency)

    async def one(body: bytes) -> int:
        async with gate:
            return await call(app, body, token)

    async with app.router.lifespan_context(app):
        for body in bodies[:20]:  # warm up: the policy program is compiled on first use, per thread
            await call(app, body, token)
        answer = bytearray()
        await call(app, bodies[0], token, answer)
        print(f"a person view: {check_release(bytes(answer))}", file=sys.stderr)
        started_cpu, started = time.process_time(), time.perf_counter()
        statuses = await asyncio.gather(*(one(bodies[i % len(bodies)]) for i in range(requests)))
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return {
        "requests": requests,
        "concurrency": concurrency,
        "cpu_ms_per_request": round(cpu * 1000 / requests, 3),
        "requests_per_s_one_process": round(requests / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--residents", type=int, default=300)
    args = parser.parse_args()
    result = asyncio.run(measure(args.requests, args.concurrency, args.residents))
    print(f"person view in process: {result['cpu_ms_per_request']} ms of CPU a request", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
