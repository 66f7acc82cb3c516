"""``private_key_jwt`` client authentication (RFC 7523 section 2.2 and 3, OIDC Core 9).

https://www.rfc-editor.org/rfc/rfc7523#section-3 — the checks, in its order:

1. ``iss`` is the client id;
2. ``sub`` is the client id too (a client authenticates as itself);
3. ``aud`` names this authorization server: its issuer, or the URL of the
   endpoint (OIDC Core 9 says the token endpoint; revocation and introspection
   accept their own URL);
4. ``exp`` is present and not passed; we also refuse assertions living longer
   than :data:`MAX_LIFETIME`, which bounds how long a jti must be remembered;
5. ``nbf``/``iat``, when present, are not in the future;
6. signed by one of the client's registered keys, with an asymmetric
   algorithm from the allowlist (never ``none`` or HMAC, RFC 8725 section 3.1),
   no key-carrying headers (RFC 8725 section 3.10);
7. ``jti`` is present and accepted once (replay).
"""

from __future__ import annotations

import json
import random
import time
from functools import lru_cache
from typing import Any

import asyncpg
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from oneauth.tokens import jose

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGS = ("ES256", "EdDSA", "PS256", "RS256")
MAX_LENGTH = jose.MAX_LENGTH
MAX_LIFETIME = 600
LEEWAY = 30
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64", "zip", "enc"})


class AssertionRejected(Exception):
    """Why an assertion failed (for the audit log; the client only learns invalid_client)."""


def unverified_subject(assertion: str) -> str | None:
    """The ``sub`` an assertion claims, to find the client whose keys must verify it."""
    try:
        claims = jose.unverified_claims(assertion, max_length=MAX_LENGTH)
    except jose.MalformedJose:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else None


@lru_cache(maxsize=1024)
def _keyset(document: str) -> jwk.JWKSet:
    return jwk.JWKSet.from_json(document)


def verify(
    assertion: str, client_id: str, jwks: dict[str, Any], audiences: frozenset[str]
) -> dict[str, Any]:
    """The verified claims, or AssertionRejected; replay is checked by :func:`remember`."""
    try:
        header = jose.header(assertion, max_length=MAX_LENGTH)
    except jose.MalformedJose:
        raise AssertionRejected("malformed") from None
    if _FORBIDDEN_HEADERS & header.keys():
        raise AssertionRejected("header")
    alg = header.get("alg")
    if alg not in ALGS:
        raise AssertionRejected("alg")
    keys = _keyset(json.dumps(jwks, sort_keys=True))
    kid = header.get("kid")
    if isinstance(kid, str):
        key = keys.get_key(kid)
    else:  # a client with one key may leave kid out
        members = list(keys["keys"])
        key = members[0] if len(members) == 1 else None
    if key is None:
        raise AssertionRejected("unknown_key")
    signed = jws.JWS()
    signed.allowed_algs = [alg]
    try:
        signed.deserialize(assertion)
        signed.verify(key, alg=alg)
    except (JWException, ValueError, TypeError):
        raise AssertionRejected("signature") from None
    try:
        claims = jose.claims(signed.payload)
    except jose.MalformedJose:
        raise AssertionRejected("claims") from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionRejected("iss_sub")
    aud = claims.get("aud")
    named = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if not named & audiences:
        raise AssertionRejected("aud")
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now - LEEWAY:
        raise AssertionRejected("exp")
    if exp > now + MAX_LIFETIME + LEEWAY:
        raise AssertionRejected("lifetime")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > now + LEEWAY):
            raise AssertionRejected(name)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
        raise AssertionRejected("jti")
    return claims


async def remember(conn: asyncpg.Connection, client_id: str, jti: str, exp: float) -> bool:
    """Record a jti; False if this client used it before (a replay)."""
    if random.random() < 1 / 64:
        await conn.execute("DELETE FROM client_assertion_jtis WHERE expires_at < now()")
    stored = await conn.fetchval(
        "INSERT INTO client_assertion_jtis (client_id, jti, expires_at)"
        " VALUES ($1, $2, to_timestamp($3)) ON CONFLICT DO NOTHING RETURNING 1",
        client_id,
        jti,
        float(exp),
    )
    return stored is not None
