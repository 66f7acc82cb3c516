"""Step-up: demanding a kind of sign-in, not just a valid token (RFC 9470).

A resource may need more than a valid token: a second factor (``amr``
contains ``mfa``), an authentication context class (``acr``), or a recent
sign-in (``auth_time`` within ``max_age`` seconds). :class:`AuthRequirement`
states such a demand once and checks verified claims against it; a refusal is
:class:`~oneauth_verifier.errors.InsufficientUserAuthentication`, carrying
the ``acr_values`` and ``max_age`` the client sends on its next authorization
request to obtain a token that passes (RFC 9470 §4).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InsufficientUserAuthentication

if TYPE_CHECKING:
    from ._claims import AccessTokenClaims

__all__ = ["ACR_MFA", "ACR_SFA", "AuthRequirement"]

# oneauth's authentication context classes (README "Multi-factor sign-in"):
# the provider puts one of them in `acr` and advertises them in discovery.
ACR_MFA = "urn:oneauth:acr:mfa"
ACR_SFA = "urn:oneauth:acr:sfa"


def _names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    names = value.split() if isinstance(value, str) else list(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError("acr and amr values must be non-empty strings")
    # Keep the caller's order: acr_values is "in order of preference" (RFC 9470 §4).
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True, init=False)
class AuthRequirement:
    """What a resource demands of the user's sign-in.

    - ``acr``: acceptable values of the token's ``acr`` claim, any one suffices
      (in order of preference: they become the challenge's ``acr_values``);
    - ``amr``: method references the token's ``amr`` must all contain
      (``"mfa"``: two different kinds of factor were used);
    - ``max_age``: at most this many seconds since ``auth_time``.

    Client-credentials tokens never satisfy a requirement: no user signed in.
    """

    acr: tuple[str, ...]
    amr: tuple[str, ...]
    max_age: int | None

    def __init__(
        self,
        *,
        acr: str | Iterable[str] | None = None,
        amr: str | Iterable[str] | None = None,
        max_age: int | None = None,
    ) -> None:
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0
        ):
            raise ValueError("max_age must be an int >= 0 (seconds)")
        object.__setattr__(self, "acr", _names(acr))
        object.__setattr__(self, "amr", _names(amr))
        object.__setattr__(self, "max_age", max_age)

    @property
    def empty(self) -> bool:
        return not self.acr and not self.amr and self.max_age is None

    @property
    def acr_values(self) -> tuple[str, ...]:
        """What to ask the provider for: the listed acr, else the MFA class if ``mfa`` is
        demanded (oneauth issues ``urn:oneauth:acr:mfa`` exactly when ``amr`` has it)."""
        if self.acr:
            return self.acr
        return (ACR_MFA,) if "mfa" in self.amr else ()

    def check(self, claims: AccessTokenClaims, *, now: float | None = None) -> None:
        """Raise :class:`InsufficientUserAuthentication` unless ``claims`` satisfy this."""
        refuse = self._refuse
        if claims.is_client_token and not self.empty:
            raise refuse("a client token carries no user authentication", "amr")
        if self.acr and claims.acr not in self.acr:
            raise refuse("a different authentication level is required", "acr")
        if self.amr and not set(self.amr).issubset(claims.amr):
            raise refuse(
                "the sign-in must include authentication method " + " ".join(self.amr), "amr"
            )
        if self.max_age is not None:
            auth_time = claims.auth_time
            current = time.time() if now is None else now
            # Written so that NaN fails; an absent auth_time can prove no recency.
            if auth_time is None or not (
                math.isfinite(auth_time) and current - auth_time <= self.max_age
            ):
                raise refuse("a more recent sign-in is required", "auth_time")

    def _refuse(self, message: str, check: str) -> InsufficientUserAuthentication:
        return InsufficientUserAuthentication(
            message,
            check=check,
            acr_values=self.acr_values,
            amr=self.amr,
            max_age=self.max_age,
        )
