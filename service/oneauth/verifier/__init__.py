"""Verify oneauth JWT access tokens in resource servers.

Usage::

    from oneauth.verifier import Verifier, VerificationError

    verifier = Verifier(
        "https://auth.example.com/apps/shop", audience="orders-api", app_id="shop"
    )
    claims = verifier.verify(token)          # or: await verifier.averify(token)
    if not claims.has_scope("orders:read"):
        ...

Depends only on jwcrypto (and its ``cryptography``) and httpx. The Starlette
integration lives in :mod:`oneauth.verifier.starlette`, test helpers in
:mod:`oneauth.verifier.testing`; neither is imported from here.
"""

from ._claims import AccessTokenClaims
from ._verifier import DEFAULT_ALGORITHMS, MAX_LEEWAY, Verifier
from .errors import (
    DiscoveryError,
    InsufficientScope,
    InvalidAudience,
    InvalidClaims,
    InvalidHeader,
    InvalidIssuer,
    InvalidSignature,
    JWKSUnavailable,
    MalformedToken,
    TokenExpired,
    TokenNotYetValid,
    TokenTooLarge,
    UnknownKey,
    VerificationError,
    WrongApp,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "MAX_LEEWAY",
    "AccessTokenClaims",
    "DiscoveryError",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaims",
    "InvalidHeader",
    "InvalidIssuer",
    "InvalidSignature",
    "JWKSUnavailable",
    "MalformedToken",
    "TokenExpired",
    "TokenNotYetValid",
    "TokenTooLarge",
    "UnknownKey",
    "VerificationError",
    "Verifier",
    "WrongApp",
]
