"""RFC 3161 time-stamps on checkpoints, from a configured time-stamping authority (TSA).

A token binds a checkpoint's body to a time asserted by a third party: evidence that the log held at
least that many entries by then, which a log operator cannot backdate. Requests carry a nonce and ask
for the TSA's certificate; every token is verified (status, signature chain to the configured roots,
nonce, message imprint) before it is stored. ``rfc3161-client`` does the ASN.1 and CMS work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)


class TimestampError(Exception):
    """The TSA could not be reached, refused, or answered with a token that does not verify."""


def load_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def verify_timestamp(
    token: bytes,
    message: bytes,
    tsa_certificate: x509.Certificate,
    roots: Sequence[x509.Certificate],
    nonce: int | None = None,
) -> datetime:
    """The time the TSA asserts for ``message``; TimestampError unless the token verifies."""
    try:
        response = decode_timestamp_response(token)
        builder = VerifierBuilder(tsa_certificate=tsa_certificate, roots=list(roots), nonce=nonce)
        builder.build().verify_message(response, message)
    except (VerificationError, ValueError) as error:
        raise TimestampError(f"time-stamp token does not verify: {error}") from None
    return response.tst_info.gen_time


@dataclass(frozen=True)
class TimestampAuthority:
    url: str
    certificate: x509.Certificate
    roots: list[x509.Certificate] = field(default_factory=list)
    timeout: float = 10.0

    @classmethod
    def from_files(cls, url: str, certificate: Path, roots: Path) -> TimestampAuthority:
        return cls(url, load_certificates(certificate)[0], load_certificates(roots))

    def stamp(self, message: bytes) -> bytes:
        """Request, verify and return a DER time-stamp response over ``message``."""
        import httpx  # here, so the offline verifier can import this module without an HTTP client

        request = TimestampRequestBuilder().data(message).hash_algorithm(HashAlgorithm.SHA256).build()
        try:
            reply = httpx.post(
                self.url,
                content=request.as_bytes(),
                headers={"Content-Type": "application/timestamp-query"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as error:
            raise TimestampError(f"TSA {self.url} unreachable: {type(error).__name__}") from None
        if reply.status_code != 200:
            raise TimestampError(f"TSA {self.url} answered HTTP {reply.status_code}")
        verify_timestamp(reply.content, message, self.certificate, self.roots, nonce=request.nonce)
        return reply.content
