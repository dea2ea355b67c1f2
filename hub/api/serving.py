"""How the API is served: uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

uvicorn 0.54 with ``--workers N`` binds the listening socket itself with ``proto`` 0; accepted sockets
inherit that, and asyncio only sets ``TCP_NODELAY`` on sockets that say ``IPPROTO_TCP``
(Kludex/uvicorn#3149). A response leaves in two writes (head, then body), so with Nagle on the body
waits for the client's delayed ACK: measured here, every keep-alive request after the first took 44 ms
instead of 2. This protocol sets the option on each TCP connection itself, whatever bound the socket.
"""

from __future__ import annotations

import socket
from asyncio import Transport

from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "hub.api.serving:NoDelayH11Protocol"  # for uvicorn's ``http`` setting (``--http`` on its CLI)


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
