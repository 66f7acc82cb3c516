"""The console as an OpenID Connect relying party of the platform app (issue 15).

Authorization code + PKCE (S256) with ``state`` and ``nonce``, as the public,
first-party client ``cl_oneauth-console`` that ``oneauth platform init`` registers
with the redirect URI ``{public_url}/console/callback``. Operators sign in at
the platform's own hosted pages (``{public_url}/platform``: password, MFA per the
platform app's policy), so the console has no sign-in code of its own.

The pending sign-in (state, nonce, PKCE verifier, the page to return to) travels
in a cookie sealed with the master key (AES-GCM, context-bound), HttpOnly,
``Path=/console``, ten minutes: nothing is stored before the operator signs in,
and a callback without that cookie, or with another state, is refused.

The back channel (discovery, JWKS, the token endpoint) goes to the running
service itself through ``httpx.ASGITransport``: the same routes, middleware and
checks as over the network, without depending on the public URL being
reachable from inside the deployment (a proxy, TLS termination, a container's
own name). The ID token is verified with the platform's JWKS: signature and
algorithm, ``iss`` = the platform issuer, ``aud`` = the console's client,
``exp``/``iat``, and ``nonce`` (OIDC Core 3.1.3.7).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from jwcrypto import jwk, jwt
from jwcrypto.common import JWException
from starlette.requests import Request
from starlette.types import ASGIApp

from oneauth.platform import CONSOLE_CLIENT_ID, PLATFORM_APP_ID
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.settings import Settings

LOGIN_COOKIE = "oneauth_console_login"
LOGIN_TTL = 600  # seconds to finish signing in
_CONTEXT = "console-login"
_ALGS = ["ES256", "RS256", "EdDSA", "PS256"]


class SignInFailed(Exception):
    """The callback cannot complete; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Pending:
    state: str
    nonce: str
    verifier: str
    next: str
    expires: float


@dataclass(frozen=True, slots=True)
class Operator:
    sub: str
    email: str
    tokens: dict[str, Any]


def issuer(settings: Settings) -> str:
    return settings.issuer_for(PLATFORM_APP_ID)


def redirect_uri(settings: Settings) -> str:
    return settings.public_url + "/console/callback"


def safe_next(value: str | None) -> str:
    """Only a console path: never an absolute URL or ``//host`` (an open redirect)."""
    if not value or not value.startswith("/console/") or value.startswith("//"):
        return "/console/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/console/"
    return value


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def begin(settings: Settings, box: SecretBox, next_url: str) -> tuple[str, str]:
    """(authorization URL, sealed cookie value) of a new sign-in."""
    pending = Pending(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),
        next=safe_next(next_url),
        expires=time.time() + LOGIN_TTL,
    )
    sealed = box.seal(
        json.dumps(
            {
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.verifier,
                "next": pending.next,
                "expires": pending.expires,
            }
        ).encode(),
        context=_CONTEXT,
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CONSOLE_CLIENT_ID,
            "redirect_uri": redirect_uri(settings),
            "scope": "openid email",
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": _challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{issuer(settings)}/oauth/authorize?{query}", sealed


def pending_of(request: Request, box: SecretBox) -> Pending | None:
    raw = request.cookies.get(LOGIN_COOKIE)
    if not raw or len(raw) > 2000:
        return None
    try:
        data = json.loads(box.open(raw, context=_CONTEXT))
        pending = Pending(
            str(data["state"]),
            str(data["nonce"]),
            str(data["verifier"]),
            safe_next(str(data["next"])),
            float(data["expires"]),
        )
    except (SecretBoxError, ValueError, KeyError, TypeError):
        return None
    return pending if pending.expires > time.time() else None


def _back_channel(app: ASGIApp, settings: Settings) -> httpx.AsyncClient:
    parts = urlsplit(settings.public_url)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url=f"{parts.scheme}://{parts.netloc}", timeout=10.0
    )


def _local(url: str, settings: Settings) -> str:
    """A URL of this service, as the path the in-process transport requests."""
    parts = urlsplit(url)
    base = urlsplit(settings.public_url)
    if parts.netloc != base.netloc:
        raise SignInFailed("the platform's metadata names another origin")
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def finish(
    app: ASGIApp, settings: Settings, pending: Pending, code: str, state: str
) -> Operator:
    """Redeem the code (with the PKCE verifier) and verify the ID token."""
    if not secrets.compare_digest(pending.state, state):
        raise SignInFailed("this sign-in was started in another tab or has expired")
    iss = issuer(settings)
    async with _back_channel(app, settings) as http:
        meta = await http.get(_local(f"{iss}/.well-known/openid-configuration", settings))
        if meta.status_code != 200:
            raise SignInFailed("the platform app's metadata is unavailable")
        doc = meta.json()
        if doc.get("issuer") != iss:
            raise SignInFailed("the platform app's metadata names another issuer")
        answer = await http.post(
            _local(str(doc["token_endpoint"]), settings),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri(settings),
                "client_id": CONSOLE_CLIENT_ID,
                "code_verifier": pending.verifier,
            },
        )
        if answer.status_code != 200:
            raise SignInFailed("the sign-in code was refused")
        tokens = answer.json()
        keys = await http.get(_local(str(doc["jwks_uri"]), settings))
        if keys.status_code != 200:
            raise SignInFailed("the platform app's keys are unavailable")
    claims = verify_id_token(str(tokens.get("id_token", "")), keys.text, iss, pending.nonce)
    sub, email = claims.get("sub"), claims.get("email")
    if not isinstance(sub, str) or not isinstance(email, str):
        raise SignInFailed("the ID token lacks sub or email")
    return Operator(sub, email, tokens)


def verify_id_token(token: str, jwks_json: str, iss: str, nonce: str) -> dict[str, Any]:
    """OIDC Core 3.1.3.7: signature by a key of the platform's set, iss, aud, exp, nonce."""
    try:
        keyset = jwk.JWKSet.from_json(jwks_json)
        checked = jwt.JWT(
            jwt=token,
            key=keyset,
            algs=_ALGS,
            check_claims={"iss": iss, "aud": CONSOLE_CLIENT_ID, "exp": None},
            expected_type="JWS",
        )  # jwcrypto allows 60 s of clock skew on exp/nbf
        claims = json.loads(checked.claims)
    except (JWException, ValueError, TypeError) as exc:
        raise SignInFailed("the ID token does not verify") from exc
    if not isinstance(claims, dict):
        raise SignInFailed("the ID token does not verify")
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInFailed("the ID token is not for this sign-in")
    return claims
