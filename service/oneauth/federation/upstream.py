"""The upstream protocol: OpenID Connect 1.0 and GitHub-style OAuth 2.0, no database.

Everything here talks to the upstream and nothing else: callers hold NO
database connection or transaction while these functions wait (a slow
upstream must not pin a pool connection or a row lock). Every call has
bounded timeouts (:data:`TIMEOUT` per network phase, :data:`TOTAL` for one
step) and a bounded response size; a hanging upstream ends in
:class:`UpstreamError` ``upstream_unavailable``, and the HTTP client is closed
on the way out, so no socket is kept either.

* Discovery (OIDC Discovery 1.0 section 4) and the JWKS are cached per process
  (:data:`METADATA_TTL`, :data:`JWKS_TTL`); an unknown ``kid`` refetches the
  JWKS at most once per :data:`JWKS_REFETCH_MIN` seconds (key rotation without
  letting a forged token make us hammer the upstream).
* The authorization request carries ``state`` (RFC 6749 10.12), ``nonce``
  (OIDC Core 3.1.2.1) and PKCE S256 (RFC 7636), built by authlib's client.
* The callback: an ``iss`` parameter that is present must equal the issuer,
  and is required when the upstream advertises
  ``authorization_response_iss_parameter_supported`` (RFC 9207 section 2.4,
  mix-up defence); an ``error`` response is refused.
* The code exchange runs on authlib's async httpx client
  (``AsyncOAuth2Client.fetch_token``) with the provider's client
  authentication (client_secret_basic/post, private_key_jwt, Apple's signed
  client secret).
* The ID token (OIDC Core 3.1.3.7): signature by a key of the upstream's JWKS
  with an asymmetric algorithm (never ``none``, never HMAC), ``iss``, ``aud``
  contains our client id, ``azp`` when present (required with several
  audiences), ``exp``, ``iat``, ``nonce``.
* UserInfo (OIDC Core 5.3): its ``sub`` must equal the ID token's (5.3.4).
* GitHub: ``/user`` (the numeric id is the subject, never the login or email)
  and ``/user/emails`` (the primary address, verified per that same response).

Which response an email came from matters (F1): :func:`profile` takes the
email and its ``email_verified`` from ONE response (the ID token if it carries
an email, else UserInfo), never the email from one and the flag from another.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException

from oneauth.federation.providers import Provider

with warnings.catch_warnings():
    # authlib's httpx integration announces a rename (httpx -> httpx2) on import;
    # importing authlib.deprecate first lets the "ignore" below win over the
    # "always" filter it installs (undone when the block ends).
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

__all__ = [
    "TIMEOUT",
    "TOTAL",
    "Metadata",
    "UpstreamError",
    "UpstreamIdentity",
    "apple_user_name",
    "authorization_url",
    "clear_caches",
    "finish",
    "metadata",
]

# Per network phase; one step (discovery, or exchange + keys + userinfo) is
# bounded by TOTAL whatever the phases add up to.
TIMEOUT = httpx.Timeout(connect=3.0, read=5.0, write=5.0, pool=3.0)
TOTAL = 10.0
MAX_BODY = 512 * 1024
METADATA_TTL = 3600.0
JWKS_TTL = 600.0
JWKS_REFETCH_MIN = 30.0
CLOCK_SKEW = 60  # seconds of leeway for exp / iat
MAX_ID_TOKEN_AGE = 600  # an iat older than this is a replayed ID token
# Asymmetric only: "none" and HMAC (keyed with a secret we share) are refused.
ID_TOKEN_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
# RFC 8176 values an upstream's amr may contribute when the provider trusts it.
_AMR_VALUES = "face fpt geo hwk iris kba mca mfa otp pin pwd rba retina sc sms swk tel user vbm wia"
RFC8176_AMR = frozenset(_AMR_VALUES.split(" "))
USER_AGENT = "oneauth-federation"


class UpstreamError(Exception):
    """The upstream step failed. ``reason``: a stable snake_case code (audited,
    shown as the error page's kind); ``detail``: safe to log, never a secret."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None
    iss_parameter_supported: bool = False
    id_token_algs: tuple[str, ...] = ID_TOKEN_ALGS
    api_base: str | None = None  # github: the REST API


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """Who the upstream says signed in, reduced to what linking needs."""

    issuer: str
    subject: str  # Microsoft: "<tid>:<oid>"
    email: str | None
    email_verified: bool  # as the SAME response as ``email`` said, and trusted
    name: str | None = None
    amr: tuple[str, ...] = ()  # the upstream's amr (RFC 8176 values only)
    tokens: Mapping[str, Any] = field(default_factory=dict, repr=False)


# --- caches -------------------------------------------------------------------------


@dataclass
class _Entry:
    value: Any
    expires: float
    fetched: float


_metadata_cache: dict[str, _Entry] = {}
_jwks_cache: dict[str, _Entry] = {}
_locks: dict[str, asyncio.Lock] = {}


def clear_caches() -> None:
    """Forget cached discovery documents and key sets (tests; key rollover by hand)."""
    _metadata_cache.clear()
    _jwks_cache.clear()


def _lock(key: str) -> asyncio.Lock:
    lock = _locks.get(key)
    if lock is None:
        lock = _locks[key] = asyncio.Lock()
    return lock


def _http() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT}
    )


async def _get_json(client: httpx.AsyncClient, url: str, **kwargs: Any) -> Any:
    """GET a JSON document of at most MAX_BODY bytes."""
    try:
        async with client.stream("GET", url, **kwargs) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise UpstreamError("upstream_unavailable", f"{url}: response too large")
            status = response.status_code
    except httpx.TimeoutException as exc:
        raise UpstreamError("upstream_unavailable", f"{url}: timed out") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError("upstream_unavailable", f"{url}: {type(exc).__name__}") from exc
    if status != 200:
        raise UpstreamError("upstream_unavailable", f"{url}: HTTP {status}")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise UpstreamError("upstream_unavailable", f"{url}: not JSON") from exc


def _tenant_template(issuer: str) -> bool:
    return "{tenantid}" in issuer


def _github_metadata(provider: Provider) -> Metadata:
    base = provider.issuer.rstrip("/")
    params = provider.auth_params
    api = "https://api.github.com" if base == "https://github.com" else f"{base}/api/v3"
    return Metadata(
        issuer=base,
        authorization_endpoint=str(
            params.get("authorization_endpoint", f"{base}/login/oauth/authorize")
        ),
        token_endpoint=str(params.get("token_endpoint", f"{base}/login/oauth/access_token")),
        api_base=str(params.get("api_base", api)).rstrip("/"),
    )


def _issuer_matches(provider: Provider, advertised: str) -> bool:
    """Discovery's issuer must be the configured one (OIDC Discovery 4.3);
    Microsoft's multi-tenant endpoints advertise a ``{tenantid}`` template."""
    if provider.kind == "microsoft" and _tenant_template(advertised):
        return True
    return advertised.rstrip("/") == provider.issuer.rstrip("/")


async def metadata(provider: Provider) -> Metadata:
    """The upstream's endpoints (cached discovery; GitHub: fixed paths).

    The cache holds the upstream's public document as fetched, never one
    provider's view of it: a provider's endpoint overrides (``auth_params``)
    and issuer check apply per call, so one app's configuration can never
    change where another app's requests go."""
    if not provider.oidc:
        return _github_metadata(provider)
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    return _parse_metadata(provider, await _discovery(url))


async def _discovery(url: str) -> Any:
    entry = _metadata_cache.get(url)
    if entry is not None and entry.expires > time.monotonic():
        return entry.value
    async with _lock(url):
        entry = _metadata_cache.get(url)
        if entry is not None and entry.expires > time.monotonic():
            return entry.value
        try:
            async with asyncio.timeout(TOTAL), _http() as client:
                doc = await _get_json(client, url)
        except TimeoutError as exc:
            raise UpstreamError("upstream_unavailable", f"{url}: timed out") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("issuer"), str):
            raise UpstreamError("upstream_unavailable", "discovery: not a metadata document")
        _metadata_cache[url] = _Entry(doc, time.monotonic() + METADATA_TTL, time.monotonic())
        return doc


def _parse_metadata(provider: Provider, doc: Any) -> Metadata:
    if not isinstance(doc, dict):
        raise UpstreamError("upstream_unavailable", "discovery: not a JSON object")
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or not _issuer_matches(provider, issuer):
        raise UpstreamError("issuer_mismatch", "discovery document names another issuer")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = provider.auth_params.get(name, doc.get(name))
        if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
            raise UpstreamError("upstream_unavailable", f"discovery: no {name}")
        endpoints[name] = value
    userinfo = doc.get("userinfo_endpoint")
    algs = doc.get("id_token_signing_alg_values_supported")
    allowed = tuple(a for a in algs if a in ID_TOKEN_ALGS) if isinstance(algs, list) else ()
    return Metadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
        iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        id_token_algs=allowed or ("RS256",),  # OIDC Discovery 3: RS256 is the default
    )


async def _jwks(uri: str, *, refresh: bool = False) -> jwk.JWKSet:
    def fresh(entry: _Entry | None, now: float) -> bool:
        # A refresh (an unknown kid) refetches only if the copy is not brand new.
        return (
            entry is not None
            and entry.expires > now
            and (not refresh or now - entry.fetched < JWKS_REFETCH_MIN)
        )

    entry = _jwks_cache.get(uri)
    if fresh(entry, time.monotonic()):
        assert entry is not None
        value: jwk.JWKSet = entry.value
        return value
    async with _lock(uri):
        entry = _jwks_cache.get(uri)
        now = time.monotonic()
        if fresh(entry, now):
            assert entry is not None
            cached: jwk.JWKSet = entry.value
            return cached
        async with _http() as client:
            doc = await _get_json(client, uri)
        try:
            keys = jwk.JWKSet.from_json(json.dumps(doc))
        except (JWException, ValueError, TypeError) as exc:
            raise UpstreamError("upstream_unavailable", "jwks: not a JWK Set") from exc
        _jwks_cache[uri] = _Entry(keys, now + JWKS_TTL, now)
        return keys


# --- the authorization request ------------------------------------------------------


def authorization_url(
    provider: Provider,
    meta: Metadata,
    *,
    redirect_uri: str,
    state: str,
    nonce: str,
    code_verifier: str,
) -> str:
    """The upstream's authorization URL with state, nonce (OIDC) and PKCE S256."""
    extra: dict[str, str] = {}
    if provider.oidc:
        extra["nonce"] = nonce
    if provider.kind == "apple":
        # Apple sends name/email scopes' answers only to a form_post callback.
        extra["response_mode"] = "form_post"
    client = AsyncOAuth2Client(
        client_id=provider.client_id,
        scope=" ".join(provider.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        meta.authorization_endpoint, state=state, code_verifier=code_verifier, **extra
    )
    return str(url)


# --- the callback ---------------------------------------------------------------------


def check_response(provider: Provider, meta: Metadata, params: Mapping[str, str]) -> str:
    """The authorization response's checks before anything is sent upstream;
    returns the code. (The state was checked by the caller: it found the request.)"""
    iss = params.get("iss")
    if iss is not None:
        # RFC 9207 section 2.4: compare with the issuer identifier, simple string compare.
        if not _iss_ok(provider, meta, iss):
            raise UpstreamError("issuer_mismatch", "the iss parameter names another issuer")
    elif meta.iss_parameter_supported:
        raise UpstreamError("issuer_mismatch", "the upstream promised an iss parameter")
    error = params.get("error")
    if error is not None:
        shown = error if error.isascii() and error.replace("_", "").isalnum() else "invalid"
        raise UpstreamError("upstream_error", shown[:64])
    code = params.get("code")
    if not code or len(code) > 2048:
        raise UpstreamError("upstream_error", "no code in the response")
    return code


def _iss_ok(provider: Provider, meta: Metadata, iss: str) -> bool:
    if _tenant_template(meta.issuer):
        prefix, _, suffix = meta.issuer.partition("{tenantid}")
        middle = iss[len(prefix) : len(iss) - len(suffix)] if len(iss) > len(prefix) else ""
        return (
            iss.startswith(prefix) and iss.endswith(suffix) and bool(middle) and "/" not in middle
        )
    return hmac.compare_digest(iss.encode(), meta.issuer.encode())


async def finish(
    provider: Provider,
    meta: Metadata,
    client_secret: str,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    nonce: str,
) -> UpstreamIdentity:
    """Exchange the code and establish who signed in; bounded by TOTAL seconds."""
    try:
        async with asyncio.timeout(TOTAL):
            if provider.oidc:
                return await _finish_oidc(
                    provider, meta, client_secret, code, redirect_uri, code_verifier, nonce
                )
            return await _finish_github(
                provider, meta, client_secret, code, redirect_uri, code_verifier
            )
    except TimeoutError as exc:
        raise UpstreamError("upstream_unavailable", "the upstream did not answer in time") from exc


def _oauth_client(provider: Provider, meta: Metadata, secret: str) -> AsyncOAuth2Client:
    method = provider.auth_method
    if method == "apple_client_secret":
        secret = _apple_client_secret(provider, secret)
        method = "client_secret_post"
    client = AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=secret,
        token_endpoint_auth_method=method,
        timeout=TIMEOUT,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )
    if method == "private_key_jwt":
        # RFC 7523 section 2.2: a JWT signed with the app's RSA key (the sealed
        # "secret" is its PEM), audience the token endpoint, kid if configured.
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        kid = provider.auth_params.get("key_id")
        client.register_client_auth_method(
            PrivateKeyJWT(meta.token_endpoint, headers={"kid": str(kid)} if kid else None)
        )
    return client


def _apple_client_secret(provider: Provider, private_key: str) -> str:
    """Apple's client secret: an ES256 JWT signed with the team's key (Sign in with
    Apple REST API, "Creating a client secret"), valid for five minutes."""
    key = jwk.JWK.from_pem(private_key.encode())
    now = int(time.time())
    token = jwt.JWT(
        header={"alg": "ES256", "kid": str(provider.auth_params["key_id"])},
        claims={
            "iss": str(provider.auth_params["team_id"]),
            "iat": now,
            "exp": now + 300,
            "aud": "https://appleid.apple.com",
            "sub": provider.client_id,
        },
    )
    token.make_signed_token(key)
    return str(token.serialize())


async def _exchange(
    client: AsyncOAuth2Client,
    meta: Metadata,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        kwargs["code_verifier"] = code_verifier
    try:
        token = await client.fetch_token(
            meta.token_endpoint,
            grant_type="authorization_code",
            headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            },
            **kwargs,
        )
    except httpx.TimeoutException as exc:
        raise UpstreamError("upstream_unavailable", "token endpoint timed out") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            "upstream_unavailable", f"token endpoint: {type(exc).__name__}"
        ) from exc
    except OAuthError as exc:
        raise UpstreamError("token_exchange_failed", str(getattr(exc, "error", ""))[:64]) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamError("token_exchange_failed", "the token response is not JSON") from exc
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        raise UpstreamError("token_exchange_failed", "no access token in the response")
    return dict(token)


async def _finish_oidc(
    provider: Provider,
    meta: Metadata,
    secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    nonce: str,
) -> UpstreamIdentity:
    async with _oauth_client(provider, meta, secret) as client:
        token = await _exchange(client, meta, code, redirect_uri, code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("invalid_id_token", "no ID token in the token response")
        claims = await validate_id_token(provider, meta, id_token, nonce=nonce)
        userinfo: dict[str, Any] | None = None
        if meta.userinfo_endpoint and not _has_email(provider, claims):
            userinfo = await _userinfo(client, meta.userinfo_endpoint, token["access_token"])
            if userinfo.get("sub") != claims["sub"]:
                raise UpstreamError("userinfo_mismatch", "UserInfo names another subject")
    return profile(provider, claims, userinfo, tokens=token)


async def _userinfo(client: httpx.AsyncClient, url: str, access_token: str) -> dict[str, Any]:
    doc = await _get_json(
        client,
        url,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        auth=None,
    )
    if not isinstance(doc, dict):
        raise UpstreamError("userinfo_mismatch", "UserInfo is not a JSON object")
    return doc


def _expected_issuer(meta: Metadata, claims: Mapping[str, Any]) -> str:
    if _tenant_template(meta.issuer):
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid or "/" in tid:
            raise UpstreamError("invalid_id_token", "no tenant id in the ID token")
        return meta.issuer.replace("{tenantid}", tid)
    return meta.issuer


async def validate_id_token(
    provider: Provider, meta: Metadata, id_token: str, *, nonce: str
) -> dict[str, Any]:
    """OIDC Core 3.1.3.7: signature, iss, aud, azp, exp, iat, nonce."""
    if meta.jwks_uri is None:
        raise UpstreamError("invalid_id_token", "the upstream publishes no keys")
    try:
        header = jws.JWS()
        header.deserialize(id_token)
        protected = header.jose_header
    except (JWException, ValueError, TypeError) as exc:
        raise UpstreamError("invalid_id_token", "not a JWS") from exc
    alg = protected.get("alg")
    if alg not in meta.id_token_algs:
        raise UpstreamError("invalid_id_token", f"algorithm {str(alg)[:20]!r} is not accepted")
    keys = await _jwks(meta.jwks_uri)
    kid = protected.get("kid")
    if kid is not None and keys.get_key(kid) is None:
        keys = await _jwks(meta.jwks_uri, refresh=True)  # the upstream rotated its keys
    try:
        token = jwt.JWT(jwt=id_token, key=keys, algs=list(meta.id_token_algs), check_claims=False)
        claims = json.loads(token.claims)
    except (JWException, ValueError, TypeError) as exc:
        raise UpstreamError("invalid_id_token", "the signature does not verify") from exc
    if not isinstance(claims, dict):
        raise UpstreamError("invalid_id_token", "the claims are not an object")
    if claims.get("iss") != _expected_issuer(meta, claims):
        raise UpstreamError("issuer_mismatch", "the ID token names another issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if provider.client_id not in audiences:
        raise UpstreamError("invalid_id_token", "the ID token is for another client")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
        raise UpstreamError("invalid_id_token", "the ID token's azp is another client")
    now = time.time()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or exp + CLOCK_SKEW < now:
        raise UpstreamError("invalid_id_token", "the ID token has expired")
    if not isinstance(iat, int | float) or iat > now + CLOCK_SKEW or iat < now - MAX_ID_TOKEN_AGE:
        raise UpstreamError("invalid_id_token", "the ID token's iat is out of range")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise UpstreamError("nonce_mismatch", "the ID token's nonce is not this request's")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 255:
        raise UpstreamError("invalid_id_token", "the ID token has no subject")
    return claims


def _claim(provider: Provider, name: str) -> str:
    return str(provider.claim_mapping.get(name, name))


def _has_email(provider: Provider, claims: Mapping[str, Any]) -> bool:
    return isinstance(claims.get(_claim(provider, "email")), str)


def _verified(value: Any) -> bool:
    # Some upstreams (Apple) send the JSON string "true".
    return value is True or value == "true"


def profile(
    provider: Provider,
    claims: Mapping[str, Any],
    userinfo: Mapping[str, Any] | None,
    *,
    tokens: Mapping[str, Any] | None = None,
) -> UpstreamIdentity:
    """The identity in the ID token's ``claims`` (and ``userinfo``, same subject).

    The email and its verification come from ONE response: the ID token when
    it carries an email, else UserInfo. An ``email_verified`` in the ID token
    says nothing about an email that only UserInfo gave (F1; the Keycloak
    CVE class). Microsoft's subject is ``<tid>:<oid>`` (never the email)."""
    source: Mapping[str, Any] = claims
    if not _has_email(provider, claims) and userinfo is not None:
        source = userinfo
    email = source.get(_claim(provider, "email"))
    verified = _verified(source.get(_claim(provider, "email_verified")))
    if provider.kind == "microsoft":
        tid, oid = claims.get("tid"), claims.get("oid")
        if not isinstance(tid, str) or not isinstance(oid, str) or not tid or not oid:
            raise UpstreamError("invalid_id_token", "no tid/oid in Microsoft's ID token")
        subject = f"{tid}:{oid}"
    else:
        subject = str(claims["sub"])  # checked by validate_id_token
    amr = claims.get("amr")
    upstream_amr = tuple(a for a in amr if a in RFC8176_AMR) if isinstance(amr, list) else ()
    name = claims.get(_claim(provider, "name")) or (userinfo or {}).get(_claim(provider, "name"))
    return UpstreamIdentity(
        issuer=str(claims["iss"]),
        subject=subject,
        email=email if isinstance(email, str) and 3 <= len(email) <= 320 else None,
        email_verified=bool(verified and provider.trust_email_verified),
        name=name if isinstance(name, str) else None,
        amr=upstream_amr,
        tokens=dict(tokens or {}),
    )


def apple_user_name(value: str | None) -> str | None:
    """The name in Apple's ``user`` form field (first sign-in only): a JSON object
    ``{"name": {"firstName", "lastName"}, "email"}`` posted by the browser, not
    signed. Display only: its ``email`` is never read (the ID token's is the one
    that counts, F1/F9), and a malformed value is no name, never an error."""
    if not value:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    name = doc.get("name") if isinstance(doc, dict) else None
    if not isinstance(name, dict):
        return None
    parts = [name.get("firstName"), name.get("lastName")]
    text = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    text = "".join(c for c in text if c.isprintable())[:200]
    return text or None


async def _finish_github(
    provider: Provider,
    meta: Metadata,
    secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> UpstreamIdentity:
    """GitHub's web application flow: the token, then ``GET /user`` and
    ``GET /user/emails`` (the primary address and ITS ``verified``)."""
    async with _oauth_client(provider, meta, secret) as client:
        # GitHub accepts PKCE on its web flow; a server that does not know it ignores it.
        token = await _exchange(client, meta, code, redirect_uri, code_verifier)
        headers = {
            "Authorization": f"Bearer {token['access_token']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        assert meta.api_base is not None
        user = await _get_json(client, f"{meta.api_base}/user", headers=headers, auth=None)
        emails = await _get_json(client, f"{meta.api_base}/user/emails", headers=headers, auth=None)
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise UpstreamError("userinfo_mismatch", "/user has no numeric id")
    primary = next(
        (
            e
            for e in (emails if isinstance(emails, list) else [])
            if isinstance(e, dict) and e.get("primary") is True and isinstance(e.get("email"), str)
        ),
        None,
    )
    email = primary["email"] if primary else None
    verified = bool(primary and primary.get("verified") is True and provider.trust_email_verified)
    name = user.get("name") or user.get("login")
    return UpstreamIdentity(
        issuer=meta.issuer,
        subject=str(user["id"]),
        email=email if isinstance(email, str) and 3 <= len(email) <= 320 else None,
        email_verified=verified,
        name=name if isinstance(name, str) else None,
        tokens=token,
    )
