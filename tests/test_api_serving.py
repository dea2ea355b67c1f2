"""The served protocol turns Nagle's algorithm off on every connection, whatever bound the listening socket."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from hub.api.serving import PROTOCOL, NoDelayH11Protocol, NoDelayHttpToolsProtocol


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
