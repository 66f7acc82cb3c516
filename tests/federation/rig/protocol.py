"""Client-side helpers of the rig's own tests: authorization URLs, PKCE, ID token checks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
from jwcrypto import jwk, jwt

from oidc._support import pkce_pair, query

__all__ = ["authorize_url", "pkce_pair", "query", "verify_id_token"]


def authorize_url(
    endpoint: str,
    client_id: str,
    redirect_uri: str,
    *,
    challenge: str | None,
    state: str = "st-rig",
    nonce: str | None = "n-rig",
    scope: str = "openid email profile",
    **extra: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        **extra,
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if nonce is not None:
        params["nonce"] = nonce
    return f"{endpoint}?{urlencode(params)}"


def verify_id_token(
    token: str, jwks_uri: str, *, issuer: str, audience: str, nonce: str | None
) -> dict[str, Any]:
    """Signature by the upstream's published JWKS, then iss/aud/exp/nonce."""
    keys = jwk.JWKSet.from_json(httpx.get(jwks_uri, timeout=5.0).text)
    checked = {"iss": issuer, "aud": audience}
    if nonce is not None:
        checked["nonce"] = nonce
    parsed = jwt.JWT(jwt=token, key=keys, check_claims={**checked, "exp": None})
    claims: dict[str, Any] = json.loads(parsed.claims)
    return claims
