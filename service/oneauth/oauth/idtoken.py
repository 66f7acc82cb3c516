"""Checking an ID token this app issued, when one comes back as ``id_token_hint``.

OpenID Connect RP-Initiated Logout 1.0 section 2: the OP verifies that it was
the issuer of the hint; an expired hint is still a valid hint. So: our own
signature (a key of this app's published JWKS, algorithm allowlist, no
key-carrying headers, RFC 8725 section 3.10), ``typ`` JWT (not an access
token), exact ``iss`` and ``app_id`` (B1), but no ``exp`` check.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from oneauth.tokens import jose

ALGS = frozenset({"RS256", "ES256", "EdDSA"})
MAX_LENGTH = jose.MAX_LENGTH
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64", "zip", "enc"})


@lru_cache(maxsize=256)
def _keyset(document: bytes) -> jwk.JWKSet:
    return jwk.JWKSet.from_json(document)


def verify_hint(jwks: bytes, issuer: str, app_id: str, token: str) -> dict[str, Any] | None:
    """The claims of an ID token this app signed, else None."""
    try:
        header = jose.header(token, max_length=MAX_LENGTH)
    except jose.MalformedJose:
        return None
    if _FORBIDDEN_HEADERS & header.keys():
        return None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGS or header.get("typ") != "JWT" or not isinstance(kid, str):
        return None
    key = _keyset(jwks).get_key(kid)
    if key is None:
        return None
    signed = jws.JWS()
    signed.allowed_algs = [alg]
    try:
        signed.deserialize(token)
        signed.verify(key, alg=alg)
        claims = jose.claims(signed.payload)
    except (JWException, ValueError, TypeError):  # MalformedJose is a ValueError
        return None
    if claims.get("iss") != issuer or claims.get("app_id") != app_id:
        return None
    if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("aud"), str | list):
        return None
    return claims


def audience_client(claims: dict[str, Any]) -> str | None:
    """The client an ID token was issued to: ``aud`` (one value) or ``azp``."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud
    azp = claims.get("azp")
    if isinstance(aud, list) and isinstance(azp, str) and azp in aud:
        return azp
    return None
