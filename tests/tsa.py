"""A local RFC 3161 time-stamping authority for tests: ``openssl ts -reply`` behind HTTP on 127.0.0.1.

Its root and TSA certificates are made here with ``cryptography``. The TSA configuration has no
``certs=`` line: rfc3161-client rejects OpenSSL replies that carry extra certificates that way.
"""

from __future__ import annotations

import datetime
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LocalTsa:
    url: str
    certificate: Path
    root: Path


def _name(common: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hub tests")]
    )


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("hub test root"))
        .issuer_name(_name("hub test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name("hub test TSA"))
        .issuer_name(root.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    paths = (directory / "root.pem", directory / "tsa.pem", directory / "tsa.key")
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        tsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


CONFIG = """
[ tsa ]
default_tsa = hub_test_tsa

[ hub_test_tsa ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@contextmanager
def local_tsa() -> Iterator[LocalTsa]:
    with tempfile.TemporaryDirectory(prefix="hub-tsa-") as scratch:
        directory = Path(scratch)
        root, certificate, _ = _certificates(directory)
        (directory / "serial").write_text("01\n")
        config = directory / "tsa.cnf"
        config.write_text(CONFIG.format(dir=directory))
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock, tempfile.TemporaryDirectory(dir=directory) as work:
                    query, reply = Path(work) / "q.tsq", Path(work) / "r.tsr"
                    query.write_bytes(body)
                    result = subprocess.run(
                        [
                            "openssl",
                            "ts",
                            "-reply",
                            "-config",
                            str(config),
                            "-queryfile",
                            str(query),
                            "-out",
                            str(reply),
                        ],
                        capture_output=True,
                        check=False,
                    )
                    answer = reply.read_bytes() if result.returncode == 0 and reply.exists() else b""
                if not answer:
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield LocalTsa(f"http://127.0.0.1:{server.server_address[1]}/", certificate, root)
        finally:
            server.shutdown()
            server.server_close()
