"""Who is calling: a partner agency's system (RFC 9421 signature), an officer or a resident (OIDC bearer token).

Every refusal is audited (an ``auth.failure`` entry naming the claimed key or token subject, never
personal data) before the 401 leaves; if that entry cannot be written the answer is 503 instead.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import http_sf
from fastapi import Request
from http_message_signatures import HTTPMessageVerifier, HTTPSignatureKeyResolver, InvalidSignature, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from audit.entries import Actor, EntryDraft
from audit.log import AuditUnavailable
from hub.api.identity import IssuerUnavailable, Officer, Resident, TokenRejected
from hub.api.partner_keys import KeyNotValid, PartnerKey, UnknownKey
from hub.api.problems import request_id_of
from hub.api.runtime import HubRuntime
from hub.errors import HubError
from hub.httpsig import REQUEST_COMPONENTS, REQUEST_LABEL, WINDOW_SECONDS, Message, public_target_uri
from hub.release import ServiceUnavailable
from policies.decide import PrincipalContext

T = TypeVar("T")


class Unauthorized(HubError):
    """The caller is not authenticated: bad token or bad signature. ``kind`` becomes the problem type."""

    def __init__(self, detail: str, kind: str, challenge: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.challenge = challenge


class Forbidden(HubError):
    """The caller is authenticated but may not do this."""


def hub_of(request: Request) -> HubRuntime:
    runtime: HubRuntime = request.app.state.hub
    return runtime


async def audit_failure(request: Request, reason: str, principal: str = "anonymous", agency: str = "unknown") -> None:
    hub = hub_of(request)
    draft = EntryDraft(
        type="auth.failure",
        actor=Actor(agency=agency, principal=principal[:128], role="none"),
        request_id=request_id_of(request),
        detail={"reason": reason, "method": request.method, "route": request.url.path[:200]},
    )
    try:
        await hub.evidence.log.append_async(draft)
    except AuditUnavailable:
        raise ServiceUnavailable("audit") from None


# -- partner agencies: RFC 9421 ------------------------------------------------------------------------


class _RegistryResolver(HTTPSignatureKeyResolver):
    def __init__(self, hub: HubRuntime) -> None:
        self.hub = hub
        self.found: PartnerKey | None = None

    def resolve_public_key(self, key_id: str) -> object:
        self.found = self.hub.partner_keys.resolve(key_id)
        return self.found.public_key

    def resolve_private_key(self, key_id: str) -> object:
        raise InvalidSignature("the hub holds no partner private keys")


def _claimed_key_id(message: Message) -> str:
    """The keyid a request claims (for the audit entry of a refusal), read with the Structured Fields parser."""
    if "signature-input" not in message.headers:
        return "unknown"
    try:
        members: Any = http_sf.parse(message.headers["signature-input"].encode(), tltype="dictionary")
        params = members[REQUEST_LABEL][1]
        return str(params.get("keyid", "unknown"))[:128] if isinstance(params, dict) else "unknown"
    except (KeyError, IndexError, ValueError, TypeError):
        return "unknown"


def target_uri(request: Request) -> str:
    """The URI the partner signed: the hub's public base URL and the request's path and query."""
    return public_target_uri(hub_of(request).settings.api_public_url, request.url.path, request.url.query)


async def partner(request: Request) -> PartnerKey:
    """The verified partner key behind a signed request, after the window and nonce checks."""
    hub = hub_of(request)
    body = await request.body()
    message = Message.of(request.method, target_uri(request), request.headers.items())
    key_id = _claimed_key_id(message)
    resolver = _RegistryResolver(hub)
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    verifier.max_clock_skew = datetime.timedelta(seconds=WINDOW_SECONDS)
    required = [*REQUEST_COMPONENTS, *(["content-digest"] if body else [])]
    try:
        results = verifier.verify(
            message,
            max_age=datetime.timedelta(seconds=0),
            expect_tag=None,
            require_components=required,
            body=body,
        )
    except (InvalidSignature, HTTPMessageSignaturesException) as error:
        cause = error.__cause__ if isinstance(error.__cause__, UnknownKey | KeyNotValid) else None
        if isinstance(cause, UnknownKey):
            reason, kind = "unknown-key", "unknown-key"
        elif isinstance(cause, KeyNotValid):
            reason, kind = "key-not-valid", "key-not-valid"
        elif "age exceeds" in str(error) or "in the future" in str(error):
            reason, kind = "stale-signature", "stale-signature"
        elif "Content-Digest" in str(error) or "digest" in str(error).lower():
            reason, kind = "digest-mismatch", "invalid-signature"
        else:
            reason, kind = "invalid-signature", "invalid-signature"
        await audit_failure(request, reason, key_id)
        detail = str(cause) if cause else f"the request signature is not valid ({reason})"
        raise Unauthorized(detail, kind, 'Signature realm="hub"') from None
    found = resolver.found
    if found is None or len(results) != 1:
        await audit_failure(request, "invalid-signature", key_id)
        raise Unauthorized("exactly one partner signature is expected", "invalid-signature", 'Signature realm="hub"')
    result = results[0]
    created = result.parameters.get("created")
    nonce = result.nonce
    now = hub.nonces.clock()
    if result.label != REQUEST_LABEL or not isinstance(created, int) or abs(now - created) > WINDOW_SECONDS:
        await audit_failure(request, "stale-signature", key_id, found.agency)
        raise Unauthorized(
            f"the signature's created time is outside +-{WINDOW_SECONDS} s", "stale-signature", 'Signature realm="hub"'
        )
    if not nonce or len(nonce) > 128:
        await audit_failure(request, "missing-nonce", key_id, found.agency)
        raise Unauthorized("the signature needs a nonce", "invalid-signature", 'Signature realm="hub"')
    if not await asyncio.to_thread(hub.nonces.first_use, found.key_id, nonce):
        await audit_failure(request, "replayed-nonce", key_id, found.agency)
        raise Unauthorized("this nonce was used before (replay refused)", "replayed-request", 'Signature realm="hub"')
    request.state.partner_key = found.key_id
    request.state.partner_nonce = nonce  # used once by this key: what names a push's rows (routes.partner)
    return found


def partner_principal(key: PartnerKey, hub: HubRuntime) -> PrincipalContext:
    """A partner system acts as its agency's ``partner_service``; a registered key counts as strong authentication."""
    return PrincipalContext(
        id=f"svc:{key.agency}",
        agency=key.agency,
        role="partner_service",
        jurisdiction=hub.catalog.agency(key.agency).jurisdiction,
        training_valid=True,
        mfa=True,
    )


# -- officers and residents: OIDC bearer tokens -----------------------------------------------------------


@dataclass(frozen=True)
class Bearer:
    token: str


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""
    return token.strip()


async def _token_holder(request: Request, validate: Callable[[str], T]) -> T:
    """Validate the bearer token with ``validate``; refusals are audited, an unreachable issuer fails closed."""
    token = _bearer(request)
    if not token:
        await audit_failure(request, "missing-token")
        raise Unauthorized("a bearer token is required", "invalid-token", 'Bearer realm="hub"')
    try:
        return validate(token)
    except TokenRejected as error:
        await audit_failure(request, "invalid-token")
        raise Unauthorized(str(error), "invalid-token", 'Bearer realm="hub", error="invalid_token"') from None
    except IssuerUnavailable:
        raise ServiceUnavailable("identity") from None


async def officer(request: Request) -> Officer:
    return await _token_holder(request, hub_of(request).tokens.officer)


async def resident(request: Request) -> Resident:
    return await _token_holder(request, hub_of(request).tokens.resident)


def require(hub: HubRuntime, who: Officer, obj: str, act: str) -> str:
    """The role under which ``who`` may do ``act`` on ``obj`` in their agency (Casbin), else Forbidden."""
    if not hub.policy.roles.check(who.id, who.agency, obj, act):
        raise Forbidden(f"{who.id} holds no role in {who.agency} that may {act} {obj}")
    held = {role for role, agency in hub.policy.roles.roles_of(who.id) if agency == who.agency}
    claimed = [r for r in who.roles if r in held]
    return claimed[0] if claimed else sorted(held)[0]
