"""A Python client for partner agencies' systems: signs requests, verifies the hub's answers, raises typed errors.

    from hub.client import PartnerClient
    with PartnerClient("https://hub.example", key_id="civil_affairs-2026-1", private_key=key,
                       hub_public_key=hub_key) as hub:
        records = hub.query("110105194912310025", purpose="welfare_check")

Every request is signed (RFC 9421: ``@method``, ``@target-uri``, ``content-digest``, ``created``,
``nonce``); every response must carry the hub's valid signature over its status, body and the request it
answers, or :class:`UnsignedResponse` is raised — the partner keeps the signed answer as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import InvalidSignature
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from hub.httpsig import Message, ResponseMessage, header_fields, sign_request, verify_response


class HubError(Exception):
    """An error answer from the hub (RFC 9457 problem details)."""

    def __init__(self, problem: dict[str, Any], status: int) -> None:
        self.problem = problem
        self.status = status
        self.request_id = str(problem.get("request_id", ""))
        super().__init__(
            f"{status} {problem.get('title', '')}: {problem.get('detail', '')} (request {self.request_id})"
        )


class BadRequest(HubError):
    """400 or 422: the request is invalid; fix it before retrying."""


class NotAuthenticated(HubError):
    """401: the signature or token was refused (forged, stale, replayed, unknown or revoked key)."""


class NotAllowed(HubError):
    """403: authenticated, but the hub's policy does not allow it."""


class NotFound(HubError):
    """404."""


class Conflict(HubError):
    """409: the request conflicts with the current state (e.g. an agreement transition)."""


class Unavailable(HubError):
    """503: a component is down; nothing was released. Retry later."""


class UnsignedResponse(Exception):
    """The response's hub signature is missing or invalid: do not trust its content."""


_BY_STATUS: dict[int, type[HubError]] = {
    400: BadRequest,
    401: NotAuthenticated,
    403: NotAllowed,
    404: NotFound,
    409: Conflict,
    422: BadRequest,
    503: Unavailable,
}


class SignedRequests(httpx.Auth):
    """Signs every request with the hub's RFC 9421 profile (:mod:`hub.httpsig`) and, given ``hub_key``,
    checks each response's signature. The partner client uses it towards the hub, and REST connectors
    towards an agency's source API that asks for signed requests."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, key_id: str, private_key: Ed25519PrivateKey, hub_key: Ed25519PublicKey | None) -> None:
        self.key_id = key_id
        self.private_key = private_key
        self.hub_key = hub_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        message = Message.of(request.method, str(request.url), request.headers.multi_items())
        body = request.content
        sign_request(message, body, self.key_id, self.private_key)
        for name in ("Content-Digest", "Signature-Input", "Signature"):
            if name in message.headers:
                request.headers[name] = message.headers[name]
        response = yield request
        if self.hub_key is not None:
            answered = Message.of(request.method, str(request.url), request.headers.multi_items())
            headers = header_fields()
            for name, value in response.headers.multi_items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            try:
                verify_response(
                    ResponseMessage(response.status_code, headers, answered), response.content, self.hub_key
                )
            except (InvalidSignature, HTTPMessageSignaturesException) as error:
                raise UnsignedResponse(f"the hub's response signature is not valid: {error}") from None


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        problem = response.json()
    except json.JSONDecodeError:
        problem = {"title": response.reason_phrase, "detail": response.text[:200]}
    raise _BY_STATUS.get(response.status_code, HubError)(problem, response.status_code)


class PartnerClient:
    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        private_key: Ed25519PrivateKey,
        hub_public_key: Ed25519PublicKey | None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``hub_public_key`` pins the hub's response key; ``None`` skips verification (for tests of the hub only)."""
        self.http = httpx.Client(
            base_url=base_url,
            auth=SignedRequests(key_id, private_key, hub_public_key),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response.json()

    def query(
        self, id_number: str, purpose: str, datasets: list[str] | None = None, case_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"id_number": id_number, "purpose": purpose}
        if datasets:
            body["datasets"] = datasets
        if case_id:
            body["case_id"] = case_id
        result: dict[str, Any] = self._call("POST", "/v1/partner/records/query", json=body)
        return result

    def feed(self, dataset: str, purpose: str, cursor: str | None = None, limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"purpose": purpose, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._call("GET", f"/v1/partner/datasets/{dataset}/feed", params=params)
        return result

    def push(self, dataset: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/partner/datasets/{dataset}/records", json={"records": records}
        )
        return result

    def request_agreement(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/partner/sharing-requests", json=fields)
        return result
