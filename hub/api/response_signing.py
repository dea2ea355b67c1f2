"""Sign every response to a partner route (RFC 9421), errors included, so both sides hold evidence.

A pure ASGI middleware: it buffers the response of ``/v1/partner/`` requests, then adds
Content-Digest, Signature-Input and Signature (see :mod:`hub.httpsig`) before sending it on.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.httpsig import Message as SignedMessage
from hub.httpsig import ResponseMessage, header_fields, public_target_uri, sign_response

SIGNED_PREFIX = "/v1/partner/"


class ResponseSigningMiddleware:
    def __init__(self, app: ASGIApp, key: Any, key_id: str, public_url: str) -> None:
        self.app = app
        self.key: Ed25519PrivateKey = key
        self.key_id = key_id
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(SIGNED_PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                if start is None:  # a body before its start: not ASGI; pass it on unsigned
                    await send(message)
                    return
                body = b"".join(chunks)
                await send(self._signed(scope, start, body))
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)

    def _signed(self, scope: Scope, start: Message, body: bytes) -> Message:
        url = public_target_uri(self.public_url, scope["path"], scope.get("query_string", b"").decode("latin-1"))
        request = SignedMessage.of(
            scope["method"], url, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        )
        headers = header_fields()
        kept: list[tuple[bytes, bytes]] = []
        for name, value in start.get("headers", []):
            lowered = name.decode("latin-1").lower()
            if lowered in ("content-digest", "signature", "signature-input"):
                continue
            kept.append((name, value))
            if lowered != "content-length":
                headers[lowered] = value.decode("latin-1")
        response = ResponseMessage(int(start["status"]), headers, request)
        try:
            sign_response(response, body, self.key_id, self.key)
        except HTTPMessageSignaturesException:  # e.g. a malformed request signature field: a plain (401) answer
            return {**start, "headers": kept}
        for name in ("Content-Digest", "Signature-Input", "Signature"):
            kept.append((name.lower().encode(), str(response.headers[name]).encode("latin-1")))
        return {**start, "headers": kept}
