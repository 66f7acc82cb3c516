"""Verify oneauth JWT access tokens in resource servers.

Usage::

    from oneauth_verifier import Verifier, VerificationError

    verifier = Verifier(
        "https://auth.example.com/apps/shop", audience="orders-api", app_id="shop"
    )
    claims = verifier.verify(token)          # or: await verifier.averify(token)
    if not claims.has_scope("orders:read"):
        ...
    claims.require(amr="mfa", max_age=300)  # step-up: InsufficientUserAuthentication
    claims.require_access(org=True, org_permission="org:members:write")  # InsufficientScope

Depends only on jwcrypto (and its ``cryptography``) and httpx. The Starlette
integration lives in :mod:`oneauth_verifier.starlette`, test helpers in
:mod:`oneauth_verifier.testing`; neither is imported from here.
"""

from ._access import AccessRequirement
from ._claims import AccessTokenClaims
from ._stepup import ACR_MFA, ACR_SFA, AuthRequirement
from ._verifier import DEFAULT_ALGORITHMS, MAX_LEEWAY, Verifier
from ._version import __version__
from .errors import (
    DiscoveryError,
    InsufficientScope,
    InsufficientUserAuthentication,
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
    "ACR_MFA",
    "ACR_SFA",
    "DEFAULT_ALGORITHMS",
    "MAX_LEEWAY",
    "AccessRequirement",
    "AccessTokenClaims",
    "AuthRequirement",
    "DiscoveryError",
    "InsufficientScope",
    "InsufficientUserAuthentication",
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
    "__version__",
]
