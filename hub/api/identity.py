"""Bearer tokens from the OIDC issuer become principals: officers (agency, roles, jurisdiction) or residents.

Validation is joserfc's (the JOSE library under Authlib): signature against the issuer's JWKS
(fetched once, refetched when an unknown ``kid`` appears, so key rotation needs no restart), then
``iss``, ``aud``, ``exp`` and ``nbf`` with a bounded leeway. Only asymmetric algorithms are
accepted, so a token cannot be forged with a public key used as an HMAC secret.

An officer's client sends the same token on every call until it expires, so a verified signature is
remembered (by the exact token, for the key set that verified it, in a bounded LRU): the claims are
still checked against the clock on every call, and a refetched key set verifies everything afresh.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError, MissingKeyError
from joserfc.jwk import KeySet

from hub.errors import HubError
from hub.identifiers import IdentifierError, normalise_id_number

ALGORITHMS = ["ES256", "RS256", "PS256"]
MFA_AMR = frozenset({"mfa", "otp", "hwk", "sc"})
JWKS_MIN_REFRESH_SECONDS = 30.0
VERIFIED_TOKENS = 4096  # remembered signature checks; a token is about 1 KB


class TokenRejected(HubError):
    """The bearer token is missing, malformed, badly signed, expired or not meant for the hub."""


class IssuerUnavailable(HubError):
    """The issuer's key set cannot be fetched: no token can be checked (fail closed)."""


@dataclass(frozen=True)
class Officer:
    id: str
    agency: str
    roles: tuple[str, ...]
    jurisdiction: str
    mfa: bool
    training_valid: bool


@dataclass(frozen=True)
class Resident:
    subject: str  # the token's sub, opaque
    id_number: str  # the verified identity the issuer asserts; used only to compute the pseudonym


class KeySetSource:
    """The issuer's JWKS: given directly (the dev IdP) or fetched from a URL."""

    def __init__(self, url: str = "", static: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.url = url
        self.static = static
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _load(self) -> KeySet:
        if self.static is not None:
            return KeySet.import_key_set(dict(self.static()))  # type: ignore[arg-type]
        if not self.url:
            raise IssuerUnavailable("no JWKS configured: set HUB_OIDC_ISSUER (or HUB_DEV_IDP for development)")
        try:
            response = httpx.get(self.url, timeout=5.0)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as error:
            raise IssuerUnavailable(f"cannot load the issuer's JWKS from {self.url}: {type(error).__name__}") from None

    def keys(self, refresh: bool = False) -> KeySet:
        with self._lock:
            stale = refresh and time.monotonic() - self._fetched > JWKS_MIN_REFRESH_SECONDS
            if self._keys is None or stale or (refresh and self.static is not None):
                self._keys = self._load()
                self._fetched = time.monotonic()
            return self._keys


def discover_jwks_url(issuer: str) -> str:
    try:
        response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5.0)
        response.raise_for_status()
        return str(response.json()["jwks_uri"])
    except (httpx.HTTPError, KeyError, ValueError) as error:
        raise IssuerUnavailable(f"OIDC discovery failed for {issuer}: {type(error).__name__}") from None


class TokenValidator:
    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: KeySetSource,
        *,
        leeway: int = 60,
        mfa_acr: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.source = keys
        self.leeway = leeway
        self.mfa_acr = mfa_acr
        self.clock = clock
        # Built once: it reads the clock through ``now`` on every validation.
        self._registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        self._verified: OrderedDict[str, tuple[KeySet, dict[str, Any]]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def _verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature verifies under the issuer's current key set."""
        keys = self.source.keys()
        with self._verified_lock:
            known = self._verified.get(token)
            if known is not None and known[0] is keys:
                self._verified.move_to_end(token)
                return known[1]
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except (InvalidKeyIdError, MissingKeyError):  # a new signing key at the issuer: fetch its key set again
                keys = self.source.keys(refresh=True)
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        except JoseError as error:
            raise TokenRejected(f"invalid token: {error.error}") from None
        except ValueError:
            raise TokenRejected("invalid token: malformed") from None
        claims = dict(decoded.claims)
        with self._verified_lock:
            self._verified[token] = (keys, claims)
            if len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return claims

    def claims(self, token: str) -> dict[str, Any]:
        claims = dict(self._verified_claims(token))  # a copy: callers must not change the remembered claims
        try:
            self._registry.validate(claims)
        except JoseError as error:
            raise TokenRejected(f"token rejected: {error.description or error.error}") from None
        return claims

    def officer(self, token: str) -> Officer:
        claims = self.claims(token)
        roles = claims.get("roles")
        agency, jurisdiction = claims.get("agency"), claims.get("jurisdiction")
        if not (isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles)):
            raise TokenRejected("token rejected: no roles claim")
        if not isinstance(agency, str) or not isinstance(jurisdiction, str) or not jurisdiction.isdigit():
            raise TokenRejected("token rejected: agency and jurisdiction claims are required")
        amr = claims.get("amr") or []
        mfa = claims.get("acr") in self.mfa_acr or (isinstance(amr, list) and bool(MFA_AMR & set(map(str, amr))))
        training = claims.get("training_valid_until")
        return Officer(
            id=str(claims["sub"]),
            agency=agency,
            roles=tuple(roles),
            jurisdiction=jurisdiction,
            mfa=mfa,
            training_valid=isinstance(training, int) and training > self.clock(),
        )

    def resident(self, token: str) -> Resident:
        claims = self.claims(token)
        if "resident" not in (claims.get("roles") or []):
            raise TokenRejected("token rejected: not a resident token")
        try:
            id_number = normalise_id_number(str(claims.get("id_number", "")))
        except IdentifierError:
            raise TokenRejected("token rejected: no valid verified identity") from None
        return Resident(subject=str(claims["sub"]), id_number=id_number)
