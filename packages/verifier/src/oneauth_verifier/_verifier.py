"""The :class:`Verifier`: one issuer, one audience, one app."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from ._claims import AccessTokenClaims, ClaimsPolicy
from ._fetch import JWKSFetcher
from ._jwks import JWKSCache, parse_jwks
from ._jws import Header, JWSParser, decode_claims
from ._keys import SUPPORTED_ALGS, VerifyKey
from .errors import InvalidHeader, InvalidSignature

__all__ = ["DEFAULT_ALGORITHMS", "MAX_LEEWAY", "Verifier"]

DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA", "RS256")
# More skew than this hides real clock problems and stretches token lifetime.
MAX_LEEWAY = 60


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}")
    return value


def _nonempty(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


class Verifier:
    """Verifies oneauth JWT access tokens (RFC 9068) for one resource server.

    ``issuer`` is the app's exact issuer, ``{PUBLIC_URL}/apps/{app_id}``;
    ``audience`` is this resource server's identifier. Keys come from the
    issuer's discovery document, or from ``jwks_uri`` if given, or from a
    static ``jwks`` document (no HTTP at all; meant for tests).

    Thread-safe; ``verify`` and ``averify`` may be mixed.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        app_id: str,
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = 30,
        max_token_bytes: int = 8192,
        jwks_ttl: float = 300,
        refresh_cooldown: float = 30,
        stale_grace: float = 3600,
        http_timeout: float = 5,
        jwks_uri: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _nonempty("issuer", issuer)
        if not issuer.startswith(("https://", "http://")):
            raise ValueError("issuer must be an http(s) URL")
        _nonempty("audience", audience)
        _nonempty("app_id", app_id)
        if isinstance(algorithms, str):
            raise ValueError("algorithms must be a collection of names, not a string")
        algs = frozenset(algorithms)
        if not algs or not algs <= SUPPORTED_ALGS:
            # RFC 8725 §3.1: an explicit allowlist of asymmetric algorithms;
            # "none" and HS* are never acceptable for a public-key issuer.
            raise ValueError(f"algorithms must be a non-empty subset of {sorted(SUPPORTED_ALGS)}")
        if isinstance(leeway, bool) or not isinstance(leeway, int) or not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be an int between 0 and {MAX_LEEWAY} seconds")
        if isinstance(max_token_bytes, bool) or not isinstance(max_token_bytes, int):
            raise ValueError("max_token_bytes must be an int")
        _positive("max_token_bytes", max_token_bytes)
        _positive("jwks_ttl", jwks_ttl)
        _positive("refresh_cooldown", refresh_cooldown, allow_zero=True)
        _positive("stale_grace", stale_grace, allow_zero=True)
        _positive("http_timeout", http_timeout)
        if jwks is not None and jwks_uri is not None:
            raise ValueError("pass either jwks (static keys) or jwks_uri, not both")
        if jwks_uri is not None and not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("jwks_uri must be an http(s) URL")

        self.issuer = issuer
        self.audience = audience
        self.app_id = app_id
        self.algorithms = algs
        self._clock = clock
        self._parser = JWSParser(algs, max_token_bytes)
        self._policy = ClaimsPolicy(issuer, audience, app_id, leeway)
        fetcher = (
            None
            if jwks is not None
            else JWKSFetcher(
                issuer,
                jwks_uri,
                timeout=http_timeout,
                client=http_client,
                async_client=async_http_client,
            )
        )
        self._keys = JWKSCache(
            fetcher,
            ttl=jwks_ttl,
            cooldown=refresh_cooldown,
            stale_grace=stale_grace,
            clock=clock,
            static=parse_jwks(jwks) if jwks is not None else None,
        )

    def __repr__(self) -> str:
        return (
            f"Verifier(issuer={self.issuer!r}, audience={self.audience!r}, app_id={self.app_id!r})"
        )

    @property
    def clock(self) -> Callable[[], float]:
        """The clock tokens are checked against (``max_age`` of a step-up uses it too)."""
        return self._clock

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify ``token``; may block on a JWKS fetch. Raises ``VerificationError``."""
        header, signing_input, payload, signature = self._parser.parse(token)
        now = self._clock()
        key = self._keys.cached(header.kid, now)
        if key is None:
            key = self._keys.get(header.kid)
            now = self._clock()  # the fetch may have taken a while
        return self._finish(header, key, signing_input, payload, signature, now)

    async def averify(self, token: str) -> AccessTokenClaims:
        """Async :meth:`verify`; only awaits when the JWKS must be fetched."""
        header, signing_input, payload, signature = self._parser.parse(token)
        now = self._clock()
        key = self._keys.cached(header.kid, now)
        if key is None:
            key = await self._keys.aget(header.kid)
            now = self._clock()
        return self._finish(header, key, signing_input, payload, signature, now)

    def refresh_keys(self) -> None:
        """Fetch the JWKS now (e.g. at startup, to fail fast on bad config)."""
        self._keys.refresh()

    async def arefresh_keys(self) -> None:
        """Async :meth:`refresh_keys`."""
        await self._keys.arefresh()

    def _finish(
        self,
        header: Header,
        key: VerifyKey,
        signing_input: bytes,
        payload: str,
        signature: bytes,
        now: float,
    ) -> AccessTokenClaims:
        # RFC 8725 §3.1: the key decides the algorithm, never the token alone.
        if key.alg != header.alg:
            raise InvalidHeader("alg does not match the key", check="alg")
        try:
            key.verify(signature, signing_input)
        except Exception:
            raise InvalidSignature("signature verification failed") from None
        # Only now, with the signature checked, is the payload worth parsing.
        return self._policy.validate(decode_claims(payload), now)
