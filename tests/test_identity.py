"""Bearer-token validation: a remembered signature check never outlives the token's clock checks or its key set."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from hub.api.identity import KeySetSource, TokenRejected, TokenValidator

ISSUER = "https://idp.test"


class Keys:
    """A key set the test can rotate: the issuer's current public keys as a JWKS."""

    def __init__(self) -> None:
        self.rotate()

    def rotate(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": f"k{time.monotonic_ns()}"})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def token(self, lifetime: int = 60, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "hub", "sub": "P-1", "iat": now, "exp": now + lifetime, **claims}
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, body, self.key)


def validator(keys: Keys, source: KeySetSource, clock: list[float]) -> TokenValidator:
    return TokenValidator(ISSUER, "hub", source, leeway=0, clock=lambda: clock[0])


def test_a_remembered_token_is_still_refused_once_it_expires() -> None:
    keys, clock = Keys(), [time.time()]
    tokens = validator(keys, KeySetSource(static=keys.jwks), clock)
    token = keys.token(lifetime=60)
    assert tokens.claims(token)["sub"] == "P-1"
    assert tokens.claims(token)["sub"] == "P-1"  # the second call is answered from the verified tokens
    clock[0] += 120
    with pytest.raises(TokenRejected, match="expired"):
        tokens.claims(token)


def test_claims_handed_out_cannot_change_the_remembered_ones() -> None:
    keys, clock = Keys(), [time.time()]
    tokens = validator(keys, KeySetSource(static=keys.jwks), clock)
    token = keys.token()
    tokens.claims(token)["sub"] = "someone-else"
    assert tokens.claims(token)["sub"] == "P-1"


def test_a_refetched_key_set_verifies_remembered_tokens_again() -> None:
    keys, clock = Keys(), [time.time()]
    source = KeySetSource(static=keys.jwks)
    tokens = validator(keys, source, clock)
    old = keys.token()
    assert tokens.claims(old)["sub"] == "P-1"
    keys.rotate()  # the issuer drops the old key and signs with a new one
    assert tokens.claims(keys.token())["sub"] == "P-1"  # its unknown kid makes the source refetch
    with pytest.raises(TokenRejected):
        tokens.claims(old)  # remembered under the old key set: checked again, and the key is gone


def test_a_forged_token_is_never_remembered_as_verified() -> None:
    keys, clock = Keys(), [time.time()]
    tokens = validator(keys, KeySetSource(static=keys.jwks), clock)
    header, body, _ = keys.token().split(".")
    forged = f"{header}.{body}.{'A' * 86}"
    for _ in range(2):
        with pytest.raises(TokenRejected):
            tokens.claims(forged)
