"""The development identity provider's endpoints (mounted only when HUB_DEV_IDP is on; never in production)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import hub_of
from hub.api.dev_idp import DevIdentityProvider

router = APIRouter(prefix="/dev-idp", tags=["development identity provider"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$", examples=["P-0042"])
    agency: str | None = Field(default=None, max_length=64, examples=["police"])
    roles: list[str] = Field(default_factory=list, max_length=10, examples=[["investigator"]])
    jurisdiction: str | None = Field(default=None, pattern=r"^\d{6}$", examples=["110100"])
    mfa: bool = False
    id_number: str | None = Field(default=None, pattern=r"^\d{17}[\dXx]$")
    lifetime: int = Field(default=3600, ge=60, le=86400)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type
    expires_in: int


def _idp(request: Request) -> DevIdentityProvider:
    idp = hub_of(request).dev_idp
    if idp is None:  # the router is mounted only with the dev IdP; this is belt and braces
        raise HTTPException(status_code=404, detail="the development identity provider is not enabled")
    return idp


@router.get("/.well-known/openid-configuration", summary="OIDC discovery document")
async def discovery(request: Request) -> dict[str, Any]:
    return _idp(request).discovery()


@router.get("/jwks", summary="The dev IdP's signing keys (JWKS)")
async def jwks(request: Request) -> dict[str, Any]:
    return _idp(request).jwks()


@router.post("/token", summary="Issue a token for any principal (development only)")
async def token(body: TokenIn, request: Request) -> TokenOut:
    hub = hub_of(request)
    idp = _idp(request)
    value = idp.issue(
        body.subject,
        audience=hub.settings.oidc_audience,
        agency=body.agency,
        roles=body.roles,
        jurisdiction=body.jurisdiction,
        mfa=body.mfa,
        id_number=body.id_number,
        lifetime=body.lifetime,
    )
    return TokenOut(access_token=value, expires_in=body.lifetime)
