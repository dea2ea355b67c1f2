"""The hub's RFC 9421 profile, shared by the API and :mod:`hub.client` (``http-message-signatures`` does the work).

Requests: Ed25519, covering ``@method``, ``@target-uri`` and (on any body) ``content-digest`` (RFC 9530,
SHA-256), with ``created``, ``nonce``, ``keyid`` and ``alg`` as signed parameters, label ``partner``.
A request is accepted within +-300 s of ``created`` and once per nonce.

Responses: the hub signs ``@status``, ``content-type``, ``content-digest`` and, from the request it
answers, ``@method``, ``@target-uri`` and the request's own ``signature`` field (RFC 9421 section 2.4),
label ``hub``. So a partner holds evidence that *this* answer was given to *that* signed request.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.structures import CaseInsensitiveDict

WINDOW_SECONDS = 300
REQUEST_LABEL = "partner"
RESPONSE_LABEL = "hub"
REQUEST_COMPONENTS = ("@method", "@target-uri")
RESPONSE_COMPONENTS = (
    "@status",
    "content-type",
    "content-digest",
    '"@method";req',
    '"@target-uri";req',
    '"signature";req;key="partner"',
)


def public_target_uri(base_url: str, path: str, query: str) -> str:
    """``@target-uri`` as a partner signs it: the hub's public base URL, then the path and query it received."""
    return f"{base_url}{path}" + (f"?{query}" if query else "")


def header_fields() -> CaseInsensitiveDict:
    """An empty case-insensitive header map (the library's own type, which it reads and writes)."""
    return CaseInsensitiveDict()  # type: ignore[no-untyped-call]


@dataclass
class Message:
    """A request view the library reads and writes: uppercase method, absolute URL, header fields."""

    method: str
    url: str
    headers: CaseInsensitiveDict = field(default_factory=header_fields)

    @classmethod
    def of(cls, method: str, url: str, headers: Iterable[tuple[str, str]]) -> Message:
        held = header_fields()
        for name, value in headers:
            held[name] = f"{held[name]}, {value}" if name in held else value
        return cls(method.upper(), url, held)


@dataclass
class ResponseMessage:
    status_code: int
    headers: CaseInsensitiveDict
    request: Message


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, private: Ed25519PrivateKey | None = None, public: Ed25519PublicKey | None = None) -> None:
        self.private = private
        self.public = public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        if self.private is None:
            raise InvalidSignature("no signing key")
        return self.private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        if self.public is None:
            raise InvalidSignature("no verification key")
        return self.public


def sign_request(
    message: Message,
    body: bytes,
    key_id: str,
    private_key: Ed25519PrivateKey,
    *,
    created: datetime.datetime | None = None,
    nonce: str | None = None,
) -> None:
    """Add Content-Digest (when there is a body), Signature-Input and Signature to ``message``."""
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(private=private_key))
    signer.sign(
        message,
        key_id=key_id,
        created=created or datetime.datetime.now(datetime.UTC),
        nonce=nonce or secrets.token_urlsafe(18),
        label=REQUEST_LABEL,
        covered_component_ids=REQUEST_COMPONENTS,
        body=body if body else None,
    )


def sign_response(response: ResponseMessage, body: bytes, key_id: str, private_key: Ed25519PrivateKey) -> None:
    covered = [c for c in RESPONSE_COMPONENTS if c != '"signature";req;key="partner"' or _signed(response.request)]
    if "content-type" not in response.headers:
        covered.remove("content-type")
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(private=private_key))
    signer.sign(
        response,
        key_id=key_id,
        created=datetime.datetime.now(datetime.UTC),
        label=RESPONSE_LABEL,
        covered_component_ids=[c for c in covered if c != "content-digest"],
        body=body,
    )


def _signed(request: Message) -> bool:
    return "signature" in request.headers and f"{REQUEST_LABEL}=" in request.headers["signature"]


def verify_response(response: ResponseMessage, body: bytes, public_key: Ed25519PublicKey) -> Mapping[str, object]:
    """Check the hub's signature on a response; returns the signed parameters. Raises InvalidSignature."""
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(public=public_key))
    verifier.max_clock_skew = datetime.timedelta(seconds=WINDOW_SECONDS)
    required = ["@status", '"@method";req', '"@target-uri";req']
    if _signed(response.request):
        required.append('"signature";req;key="partner"')
    results = verifier.verify(
        response,
        max_age=datetime.timedelta(seconds=WINDOW_SECONDS),
        expect_tag=None,
        require_components=required,
        body=body,
    )
    return results[0].parameters
