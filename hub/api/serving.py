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
"""

from __future__ import annotations

import socket
from asyncio import Transport

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "hub.api.serving:NoDelayHttpToolsProtocol"  # for uvicorn's ``http`` setting (``--http`` on its CLI)


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
