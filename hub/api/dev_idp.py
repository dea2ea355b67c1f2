"""A development OpenID provider: signs tokens with a local key and serves its JWKS.

For the demo and tests only. It is mounted only when ``HUB_DEV_IDP=true``, and settings refuse that
with ``HUB_PROFILE=production``. Its ES256 key is a keystore secret, so tokens survive a restart of
the demo and the key never sits in a file of its own.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from keys.keystore import Keystore

SECRET_NAME = "dev-idp:es256"  # noqa: S105 - the keystore entry's name, not a secret
KEY_ID = "dev-idp-1"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class DevIdentityProvider:
    def __init__(self, keystore: Keystore, issuer: str) -> None:
        seed = keystore.secret(SECRET_NAME)
        scalar = int.from_bytes(seed, "big") % (P256_ORDER - 1) + 1  # a valid private scalar, 1 <= d < n
        private = ec.derive_private_key(scalar, ec.SECP256R1())
        self.key = ECKey.import_key(private, parameters={"kid": KEY_ID, "use": "sig", "alg": "ES256"})
        self.issuer = issuer

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "id_token_signing_alg_values_supported": ["ES256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        }

    def issue(
        self,
        subject: str,
        *,
        audience: str = "hub",
        agency: str | None = None,
        roles: Sequence[str] = (),
        jurisdiction: str | None = None,
        mfa: bool = False,
        training: bool = True,
        id_number: str | None = None,
        lifetime: int = 3600,
        now: int | None = None,
    ) -> str:
        issued = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(12),
            "roles": list(roles),
            "acr": "urn:hub:acr:mfa" if mfa else "urn:hub:acr:password",
            "amr": ["pwd", "otp"] if mfa else ["pwd"],
        }
        if agency is not None:
            claims["agency"] = agency
        if jurisdiction is not None:
            claims["jurisdiction"] = jurisdiction
        if training:
            claims["training_valid_until"] = issued + 365 * 86400
        if id_number is not None:
            claims["id_number"] = id_number
        return jwt.encode({"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}, claims, self.key)
