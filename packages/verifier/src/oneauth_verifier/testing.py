"""Test helpers: mint oneauth-shaped access tokens with a local key.

For resource servers' own tests, so they need neither a running oneauth nor
HTTP::

    minter = TokenMinter("https://auth.test/apps/shop", app_id="shop", audience="orders-api")
    verifier = minter.verifier()
    token = minter.mint(sub="user-1", scope="orders:read", roles=["admin"])
    assert verifier.verify(token).has_scope("orders:read")
    # An org-scoped token (issue 13): org_slug defaults to "acme" beside an org_id.
    token = minter.mint(org_id="org_acme000000000000", org_roles=["admin"],
                        org_permissions=["org:members:write"], permissions=["invoice:read"])

Signing goes through jwcrypto, independently of the verifier's own
signature code, so a test cannot pass because both sides share a bug.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jwcrypto import jwk, jws

from ._keys import SUPPORTED_ALGS
from ._verifier import Verifier

__all__ = ["TokenMinter"]

_KEYGEN: dict[str, dict[str, Any]] = {
    "ES256": {"kty": "EC", "crv": "P-256"},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519"},
    "RS256": {"kty": "RSA", "size": 2048},
}


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Apply overrides; a value of None removes the member."""
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class TokenMinter:
    """Issues tokens like oneauth's for one app, signed by a throwaway key."""

    def __init__(
        self,
        issuer: str,
        app_id: str,
        audience: str,
        alg: str = "ES256",
        *,
        client_id: str = "test-client",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"alg must be one of {sorted(SUPPORTED_ALGS)}")
        self.issuer = issuer
        self.app_id = app_id
        self.audience = audience
        self.alg = alg
        self.client_id = client_id
        self.clock = clock
        self._keys: list[jwk.JWK] = []
        self.rotate()

    @property
    def kid(self) -> str:
        """The kid (RFC 7638 thumbprint) of the current signing key."""
        return str(self._keys[-1]["kid"])

    @property
    def jwks(self) -> dict[str, Any]:
        """The public JWK Set, as the issuer's jwks_uri would serve it."""
        return {"keys": [self.public_jwk(k["kid"]) for k in self._keys]}

    def public_jwk(self, kid: str | None = None) -> dict[str, Any]:
        """One public JWK (the current key by default)."""
        wanted = self.kid if kid is None else kid
        for key in self._keys:
            if key["kid"] == wanted:
                public: dict[str, Any] = key.export_public(as_dict=True)
                return public
        raise KeyError(kid)

    def rotate(self, *, keep_old: bool = True) -> str:
        """Switch to a new signing key and return its kid."""
        key = jwk.JWK.generate(**_KEYGEN[self.alg], use="sig", alg=self.alg)
        key["kid"] = key.thumbprint()
        self._keys = [*self._keys, key] if keep_old else [key]
        return self.kid

    def claims(
        self,
        sub: str = "user-1",
        scope: str | Iterable[str] | None = "",
        roles: Iterable[str] | None = (),
        ttl: float = 300,
        *,
        permissions: Iterable[str] | None = None,
        org_id: str | None = None,
        org_slug: str | None = None,
        org_roles: Iterable[str] | None = None,
        org_permissions: Iterable[str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The claims :meth:`mint` would sign; ``extra`` overrides, None omits a claim.

        ``permissions``, ``org_id``, ``org_slug`` (default: ``org_id`` without
        its ``org_`` prefix, lower-cased), ``org_roles`` and ``org_permissions``
        are issue 13's claims, as oneauth sends them: sorted lists, empty
        lists left out."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "exp": now + int(ttl),
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": self.client_id,
            "app_id": self.app_id,
            "scope": scope if isinstance(scope, str) or scope is None else " ".join(scope),
            "sid": secrets.token_urlsafe(12),
            "amr": ["pwd"],
            "auth_time": now,
            "roles": None if roles is None else list(roles),
        }
        if permissions is not None:
            claims["permissions"] = sorted(set(permissions)) or None
        if org_id is not None:
            claims["org_id"] = org_id
            claims["org_slug"] = org_slug or org_id.removeprefix("org_").lower()
            claims["org_roles"] = sorted(set(org_roles or ())) or None
            claims["org_permissions"] = sorted(set(org_permissions or ())) or None
        return _merge({k: v for k, v in claims.items() if v is not None}, extra)

    def mint(
        self,
        sub: str = "user-1",
        scope: str | Iterable[str] | None = "",
        roles: Iterable[str] | None = (),
        ttl: float = 300,
        *,
        headers: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        """A signed user access token. ``headers`` overrides JOSE header members;
        ``extra``: the keywords of :meth:`claims` (``org_id``, ``org_roles``, ...)
        and claim overrides."""
        return self.sign(self.claims(sub, scope, roles, ttl, **extra), headers=headers)

    def mint_client_token(
        self,
        client_id: str | None = None,
        scope: str | Iterable[str] | None = "",
        ttl: float = 300,
        **extra: Any,
    ) -> str:
        """A client-credentials token: ``sub == client_id``, ``grant`` set. An org
        client's token: ``org_id=...`` (and ``org_slug``) in ``extra``."""
        cid = client_id or self.client_id
        org_id, org_slug = extra.pop("org_id", None), extra.pop("org_slug", None)
        claims = self.claims(
            cid,
            scope,
            (),
            ttl,
            org_id=org_id,
            org_slug=org_slug,
            client_id=cid,
            grant="client_credentials",
        )
        for name in ("sid", "amr", "auth_time"):
            claims.pop(name)
        return self.sign(_merge(claims, extra))

    def sign(
        self, claims: Mapping[str, Any] | bytes, *, headers: Mapping[str, Any] | None = None
    ) -> str:
        """Sign claims, or raw payload bytes for malformed-token tests, with the current key."""
        key = self._keys[-1]
        header = _merge({"alg": self.alg, "typ": "at+jwt", "kid": self.kid}, headers or {})
        if isinstance(claims, bytes):
            payload = claims
        else:
            payload = json.dumps(dict(claims), separators=(",", ":")).encode()
        alg = header.get("alg", self.alg)
        signed = jws.JWSCore(alg, key, json.dumps(header), payload).sign()
        # JWSCore hands back the encoded payload as bytes, the rest as str.
        return f"{signed['protected']}.{signed['payload'].decode()}.{signed['signature']}"

    def verifier(self, **kwargs: Any) -> Verifier:
        """A :class:`Verifier` trusting this minter's current keys, without HTTP.

        It holds a snapshot: after :meth:`rotate`, build a new one.
        """
        kwargs.setdefault("clock", self.clock)
        return Verifier(self.issuer, self.audience, self.app_id, jwks=self.jwks, **kwargs)
