"""How the API is served: uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

uvicorn 0.54 with ``--workers N`` binds the listening socket itself with ``proto`` 0; accepted sockets
inherit that, and asyncio only sets ``TCP_NODELAY`` on sockets that say ``IPPROTO_TCP``
(Kludex/uvicorn#3149). A response leaves in two writes (head, then body), so with Nagle on the body
waits for the client's delayed ACK: measured here, every keep-alive request after the first took 44 ms
instead of 2. This protocol sets the option on each TCP connection itself, whatever bound the socket.

The parser is httptools (llhttp, in C), uvicorn's own choice when it is installed, rather than h11 (pure
Python): measured with bench/api.py, h11's parsing and response writing were about a tenth of a person
view's server CPU. The h11 variant stays for a deployment without httptools.

The event loop is uvloop (libuv, in C), which uvicorn's ``loop="auto"`` takes when it is installed (it is
a dependency, except on Windows, which it does not support). Measured with bench/api.py, two full runs
each way taken in turn: the person view served 1,246 and 1,282 requests/s (1.36-1.49 ms of server CPU a
request) against 1,027 and 1,244 on asyncio's own loop (1.37-1.79 ms), and the p99 ratio was 2.33 and 2.44
against 3.26 and 2.79. uvloop sets ``TCP_NODELAY`` itself; setting it again here is harmless.

With several workers each listens on a socket of its own (``SO_REUSEPORT``, Linux), so the kernel spreads
new connections over them. uvicorn binds one socket in its supervisor and every worker accepts from it;
whichever worker the scheduler wakes first wins each race, and it tends to keep winning. Measured with 32
keep-alive clients against two workers, rounds split 24/8, 29/3, 31/1 and 32/0. A worker left with a few
connections idles while they wait for their audit commit, the other saturates: person views fell from about
1,600 to 1,150-1,300 requests/s in those rounds, and their tail latency rose with them.

With several workers on Linux each worker is also pinned to a CPU of its own, the first of the server's CPUs
that no other worker holds (``sched_setaffinity``), much as nginx's ``worker_cpu_affinity auto`` does. A
worker is two busy threads, its event loop and its audit writer, which hand Python's GIL to each other
several times a batch; left to migrate, they ran on different cores and each hand-over crossed between them.
Measured with bench/api.py's served person view in paired rounds (fifteenth session), pinned workers served
0-20% more requests a second at a lower p99 in most rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from asyncio import Transport
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

PROTOCOL = "hub.api.serving:NoDelayHttpToolsProtocol"  # for uvicorn's ``http`` setting (``--http`` on its CLI)
SPREADS_CONNECTIONS = sys.platform.startswith("linux")  # elsewhere SO_REUSEPORT does not balance (BSD, macOS)


def _no_delay(transport: Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        _no_delay(transport)
        super().connection_made(transport)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        _no_delay(transport)
        super().connection_made(transport)


def reuse_port_socket(family: int, address: Any, kind: type[socket.socket] = socket.socket) -> socket.socket:
    """A TCP socket bound to ``address`` that other sockets of this user may bind too (``SO_REUSEPORT``)."""
    sock = kind(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class WorkerListener(socket.socket):
    """The supervisor's socket, which no worker shares: each worker that receives it binds a twin of its own.

    uvicorn hands its supervisor's socket to every worker process by pickling it (and again to each worker it
    restarts); this class's reducer makes that hand-over "bind your own ``SO_REUSEPORT`` socket to this
    address" instead. The supervisor's socket stays bound and never listens, so it holds the port and is
    given no connections.
    """


_CLAIMS: list[socket.socket] = []  # in a worker: the claim on its CPU, held for the process's life


def _claim_cpu(cpus: list[int]) -> int | None:
    """The first of ``cpus`` no sibling worker holds, claimed by binding a name in Linux's abstract socket
    namespace: the name is freed when the process ends, however it ends, so a restarted worker takes the CPU
    of the one it replaces, and two workers starting at once cannot take the same one."""
    for cpu in cpus:
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind(f"\0hub-worker-cpu-{os.getppid()}-{cpu}")
        except OSError:
            claim.close()
            continue
        _CLAIMS.append(claim)
        return cpu
    return None  # more workers than CPUs: this one runs unpinned


def _pinned_worker_socket(family: int, address: Any, cpus: list[int]) -> socket.socket:
    """In a worker being started: pin this process to a free one of ``cpus`` (if any), then bind its socket."""
    cpu = _claim_cpu(cpus) if cpus else None
    if cpu is not None:
        with contextlib.suppress(OSError):  # a CPU taken away since: the worker runs unpinned
            os.sched_setaffinity(0, {cpu})
    return reuse_port_socket(family, address)


class _WorkerCpus:
    """Whether workers pin themselves, and to which CPUs: the supervisor's own, when it has several."""

    def __init__(self) -> None:
        self.enabled = False

    def allowed(self) -> list[int]:
        if not self.enabled or not hasattr(os, "sched_getaffinity"):
            return []
        cpus = sorted(os.sched_getaffinity(0))
        return cpus if len(cpus) > 1 else []


_CPUS = _WorkerCpus()


def _reduce_listener(listener: WorkerListener) -> tuple[Callable[..., socket.socket], tuple[int, Any, list[int]]]:
    return _pinned_worker_socket, (int(listener.family), listener.getsockname(), _CPUS.allowed())


ForkingPickler.register(WorkerListener, _reduce_listener)


class SpreadingConfig(uvicorn.Config):
    """uvicorn's settings, binding a :class:`WorkerListener` for several workers on a TCP address."""

    def bind_socket(self) -> socket.socket:
        if self.uds is not None or self.fd is not None or self.workers <= 1 or not SPREADS_CONNECTIONS:
            return super().bind_socket()
        family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
        listener = reuse_port_socket(family, (self.host, self.port), WorkerListener)
        uvicorn.config.logger.info(
            "Uvicorn running on http://%s:%d with %d workers, each on its own socket (Press CTRL+C to quit)",
            self.host,
            listener.getsockname()[1],
            self.workers,
        )
        return listener


def serve(app: str, *, host: str, port: int, workers: int, pin_workers: bool = True, **options: Any) -> None:
    """Serve the ASGI app at import string ``app`` as ``hub serve`` does: httptools with Nagle off, uvloop, and
    with several workers each on its own socket and, unless ``pin_workers`` is false, its own CPU. ``options``
    go to uvicorn's settings (``factory=True``, say)."""
    _CPUS.enabled = pin_workers
    config = SpreadingConfig(app, host=host, port=port, workers=workers, http=PROTOCOL, **options)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        if workers <= 1:
            server.run()
        else:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
    if workers <= 1 and not server.started:  # as uvicorn.run: an app that failed to start is an exit code
        sys.exit(STARTUP_FAILURE)


def main(argv: list[str] | None = None) -> None:
    """``python -m hub.api.serving APP``: serve any ASGI app the way the hub is served (the API benchmark serves
    the hub and its unprotected baseline through this, so the two differ only in the protection)."""
    parser = argparse.ArgumentParser(prog="python -m hub.api.serving", description=main.__doc__)
    parser.add_argument("app", help="import string, module:attribute")
    parser.add_argument("--factory", action="store_true", help="the attribute is a factory returning the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--app-dir", default="", help="a folder to import the app from")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--no-pin-workers", action="store_true", help="let the workers run on any CPU")
    args = parser.parse_args(argv)
    if args.app_dir:
        sys.path.insert(0, args.app_dir)  # the workers are spawned with this process's sys.path
    serve(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        pin_workers=not args.no_pin_workers,
        factory=args.factory,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )


if __name__ == "__main__":
    main()
