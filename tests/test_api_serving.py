"""The served protocol turns Nagle's algorithm off on every connection, whatever bound the listening socket."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from hub.api.serving import PROTOCOL, SPREADS_CONNECTIONS, NoDelayH11Protocol, NoDelayHttpToolsProtocol

ROOT = Path(__file__).resolve().parent.parent


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _nodelay_of_a_served_connection(protocol: type[Any]) -> int:
    config = uvicorn.Config(app=_app, log_level="warning", lifespan="off")
    config.load()
    state = ServerState()
    # As uvicorn binds it with --workers: proto 0, so asyncio leaves Nagle on for accepted sockets.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    assert listener.proto == 0
    server = await asyncio.get_running_loop().create_server(lambda: protocol(config, state, {}), sock=listener)
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"GET / HTTP/1.1\r\nhost: hub\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        (connection,) = state.connections
        value = int(connection.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        return value
    finally:
        server.close()


@pytest.mark.parametrize(
    ("plain", "ours"), [(HttpToolsProtocol, NoDelayHttpToolsProtocol), (H11Protocol, NoDelayH11Protocol)]
)
def test_every_connection_has_nagle_off_even_on_a_proto_0_socket(plain: type[Any], ours: type[Any]) -> None:
    assert asyncio.run(_nodelay_of_a_served_connection(plain)) == 0  # the problem (Kludex/uvicorn#3149)
    assert asyncio.run(_nodelay_of_a_served_connection(ours)) != 0


def test_hub_serve_uses_the_httptools_protocol() -> None:
    assert f"{NoDelayHttpToolsProtocol.__module__}:{NoDelayHttpToolsProtocol.__name__}" == PROTOCOL


async def _workers_of(port: int, connections: int) -> collections.Counter[str]:
    """Which worker process answered on each of ``connections`` keep-alive connections, opened a little apart."""
    taken: collections.Counter[str] = collections.Counter()
    opened = []
    for _ in range(connections):
        opened.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.002)
    for reader, writer in opened:
        writer.write(b"GET / HTTP/1.1\r\nhost: hub\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")))
        taken[(await reader.readexactly(length)).decode()] += 1
        writer.close()
    return taken


def _serve_two_workers(*extra: str) -> tuple[collections.Counter[str], dict[str, set[int]]]:
    """Which worker took each of 64 connections, and the CPUs each worker may run on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "hub.api.serving", "tests.serving_app:app", "--port", str(port)]
    options = ["--workers", "2", "--app-dir", str(ROOT), "--log-level", "warning", "--no-access-log", *extra]
    server = subprocess.Popen([*command, *options], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                taken = asyncio.run(_workers_of(port, 2))
                if len(taken) == 2 or time.monotonic() > deadline:  # both workers are up (or never will be)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        taken = asyncio.run(_workers_of(port, 64))
        cpus = {pid: os.sched_getaffinity(int(pid)) for pid in taken}
    finally:
        server.terminate()
        server.wait(30)
    return taken, cpus


@pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreads connections on Linux only")
def test_several_workers_each_take_a_fair_share_of_the_connections_on_a_cpu_of_their_own() -> None:
    """Each worker listens on its own socket, so the kernel spreads connections over them. On uvicorn's one
    shared socket, 32 connections split 31/1 or 32/0 in many runs; here a share under 12 of 64 has a
    probability of about 1e-7 (binomial, p = 1/2). Each worker is pinned to a CPU, round robin."""
    taken, cpus = _serve_two_workers()
    assert len(taken) == 2, taken
    assert min(taken.values()) >= 12, taken
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) > 1:
        assert sorted(next(iter(c)) for c in cpus.values() if len(c) == 1) == allowed[:2], cpus


@pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreads connections on Linux only")
def test_workers_left_unpinned_may_run_on_any_cpu() -> None:
    taken, cpus = _serve_two_workers("--no-pin-workers")
    assert len(taken) == 2, taken
    assert all(c == os.sched_getaffinity(0) for c in cpus.values()), cpus


@pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreads connections on Linux only")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs")
def test_a_restarted_worker_takes_the_cpu_of_the_one_it_replaces() -> None:
    import signal

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "hub.api.serving", "tests.serving_app:app", "--port", str(port)]
    options = ["--workers", "2", "--app-dir", str(ROOT), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen([*command, *options], cwd=ROOT)

    def workers(excluding: frozenset[str] = frozenset()) -> dict[str, set[int]]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                taken = set(asyncio.run(_workers_of(port, 16))) - excluding
                if len(taken) == 2:
                    return {pid: os.sched_getaffinity(int(pid)) for pid in taken}
            time.sleep(0.2)
        raise AssertionError("the workers did not come up")

    try:
        before = workers()
        assert sorted(len(c) for c in before.values()) == [1, 1] and len(set.union(*before.values())) == 2
        killed = sorted(before)[0]
        os.kill(int(killed), signal.SIGKILL)
        after = workers(excluding=frozenset({killed}))
    finally:
        server.terminate()
        server.wait(30)
    (newcomer,) = set(after) - set(before)
    assert after[newcomer] == before[killed]
