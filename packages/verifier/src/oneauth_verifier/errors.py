"""Typed verification errors.

Every error carries ``check``, a short stable name of the rule that failed, so
callers can log and count failures without parsing messages. Messages never
contain the token or any claim value an attacker controls beyond its name: a
rejected token is untrusted input and must not be echoed into logs.

``error_code`` is the RFC 6750 §3.1 error code a resource server should send.
"""

from __future__ import annotations

__all__ = [
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
    "WrongApp",
]


class VerificationError(Exception):
    """Base class: the token must not be trusted.

    ``check`` names the failed rule ("size", "format", "alg", "kid", "typ",
    "header", "signature", "iss", "aud", "exp", "nbf", "iat", "app_id",
    "claims", "jwks", "discovery", "scope", "role", "client", "acr", "amr",
    "auth_time").
    """

    check: str = "token"
    error_code: str = "invalid_token"

    def __init__(self, message: str, *, check: str | None = None) -> None:
        super().__init__(message)
        if check is not None:
            self.check = check

    @property
    def description(self) -> str:
        """Human-readable reason, safe to return to the client."""
        return str(self.args[0]) if self.args else self.check


class TokenTooLarge(VerificationError):
    """Token exceeds ``max_token_bytes``; checked before any parsing."""

    check = "size"


class MalformedToken(VerificationError):
    """Not a compact JWS (RFC 7515 §7.1) or not a JSON claims object (RFC 7519 §7.2)."""

    check = "format"


class InvalidHeader(VerificationError):
    """JOSE header rejected: alg, kid, typ or a forbidden parameter (RFC 8725 §3.1, §3.11)."""

    check = "header"


class UnknownKey(VerificationError):
    """No key in the issuer's JWKS matches the token's ``kid``."""

    check = "kid"


class InvalidSignature(VerificationError):
    """Signature does not verify under the issuer's key (RFC 7515 §5.2)."""

    check = "signature"


class InvalidClaims(VerificationError):
    """A required claim is missing, mistyped or has the wrong value (RFC 9068 §4)."""

    check = "claims"


class InvalidIssuer(InvalidClaims):
    """``iss`` is not exactly the configured issuer (RFC 9068 §4 step 3)."""

    check = "iss"


class InvalidAudience(InvalidClaims):
    """``aud`` does not contain this resource server (RFC 9068 §4 step 4)."""

    check = "aud"


class TokenExpired(InvalidClaims):
    """``exp`` is in the past beyond the leeway (RFC 7519 §4.1.4)."""

    check = "exp"


class TokenNotYetValid(InvalidClaims):
    """``nbf`` is in the future beyond the leeway (RFC 7519 §4.1.5)."""

    check = "nbf"


class WrongApp(InvalidClaims):
    """``app_id`` names another oneauth app: tokens never cross app boundaries."""

    check = "app_id"


class JWKSUnavailable(VerificationError):
    """The issuer's keys could not be fetched and no usable cached copy remains.

    This is a server-side condition, not a client fault: resource servers
    should answer 503, not 401, so clients do not discard a good token.
    """

    check = "jwks"
    error_code = "temporarily_unavailable"


class DiscoveryError(JWKSUnavailable):
    """Discovery document unusable, e.g. its ``issuer`` differs (OIDC Discovery §4.3)."""

    check = "discovery"


class InsufficientScope(VerificationError):
    """Token is valid but lacks a required scope or role (RFC 6750 §3.1)."""

    check = "scope"
    error_code = "insufficient_scope"


class InsufficientUserAuthentication(VerificationError):
    """Valid token, but the user's sign-in does not meet the resource's demand (RFC 9470).

    Raised by :meth:`AccessTokenClaims.require` and :class:`AuthRequirement`.
    ``check`` is ``"acr"``, ``"amr"`` or ``"auth_time"`` (too old for
    ``max_age``, or absent). ``acr_values`` and ``max_age`` are what the
    client should send on its next authorization request (RFC 9470 §3, §4),
    ``amr`` the method references the resource demands.
    """

    check = "acr"
    error_code = "insufficient_user_authentication"

    def __init__(
        self,
        message: str,
        *,
        check: str,
        acr_values: tuple[str, ...] = (),
        amr: tuple[str, ...] = (),
        max_age: int | None = None,
    ) -> None:
        super().__init__(message, check=check)
        self.acr_values = acr_values
        self.amr = amr
        self.max_age = max_age
