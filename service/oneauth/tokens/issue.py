"""Minting access tokens (RFC 9068) and ID tokens (OIDC Core 2) for one app.

Every token names its issuer and app (``iss`` + ``app_id``) and carries an
explicit ``typ``, so an ID token can never pass as an access token (T1).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import AppPolicy
from oneauth.tokens.jwt import at_hash, sign_jwt
from oneauth.tokens.keystore import ID_TOKEN_ALG, AppKeys

ACCESS_TOKEN_TYP = "at+jwt"
ID_TOKEN_TYP = "JWT"
CLIENT_CREDENTIALS = "client_credentials"

# Authentication context classes (OIDC Core 2 ``acr``), derived from ``amr``
# so every token of one sign-in states the same: one factor, or several.
ACR_SFA = "urn:oneauth:acr:sfa"
ACR_MFA = "urn:oneauth:acr:mfa"
ACR_VALUES = (ACR_SFA, ACR_MFA)


def acr_for(amr: Iterable[str]) -> str:
    """``urn:oneauth:acr:mfa`` when the sign-in used two factors (``mfa`` in amr)."""
    return ACR_MFA if "mfa" in amr else ACR_SFA


@dataclass(frozen=True, slots=True)
class Issuer:
    """What signing for one app needs: its record, policy, issuer URL and keys."""

    app: AppRecord
    policy: AppPolicy
    issuer: str
    keys: AppKeys

    @property
    def audience(self) -> str:
        return self.policy.audience_for(self.issuer)

    def access_token(
        self,
        *,
        sub: str,
        client_id: str,
        scope: str,
        ttl: int,
        sid: str | None = None,
        amr: Iterable[str] = (),
        auth_time: int | None = None,
        roles: Iterable[str] = (),
        email_verified: bool | None = None,
        grant: str | None = None,
        authz: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``authz``: the roles and organization members of ``oneauth.orgs.claims``
        (``Claims.token_claims()``): ``roles``, ``permissions``, ``org_id``,
        ``org_slug``, ``org_roles``, ``org_permissions``."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "exp": now + ttl,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "app_id": self.app.app_id,
            "scope": scope,
        }
        if sid is not None:
            claims["sid"] = sid
        amr_list = list(amr)
        if amr_list:
            claims["amr"] = amr_list
            claims["acr"] = acr_for(amr_list)
        if auth_time is not None:
            claims["auth_time"] = auth_time
        role_list = sorted(set(roles))
        if role_list:
            claims["roles"] = role_list
        if email_verified is not None:
            claims["email_verified"] = email_verified
        if grant is not None:
            claims["grant"] = grant
        if authz:
            claims.update(authz)
        key = self.keys.signer(self.policy.signing_alg)
        return sign_jwt(key, claims, typ=ACCESS_TOKEN_TYP), claims

    def id_token(
        self,
        *,
        sub: str,
        client_id: str,
        auth_time: int,
        access_token: str | None,
        nonce: str | None,
        sid: str | None,
        amr: Iterable[str],
        alg: str = ID_TOKEN_ALG,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": client_id,
            "azp": client_id,
            "exp": now + self.policy.id_token_ttl,
            "iat": now,
            "auth_time": auth_time,
            "app_id": self.app.app_id,
        }
        key = self.keys.signer(alg)
        if nonce is not None:
            claims["nonce"] = nonce
        if sid is not None:
            claims["sid"] = sid
        amr_list = list(amr)
        if amr_list:
            claims["amr"] = amr_list
            claims["acr"] = acr_for(amr_list)
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token, key.alg)
        if extra:
            claims.update(extra)
        return sign_jwt(key, claims, typ=ID_TOKEN_TYP)


def token_response(
    access_token: str,
    expires_in: int,
    scope: str,
    *,
    refresh_token: str | None = None,
    id_token: str | None = None,
) -> dict[str, Any]:
    """RFC 6749 section 5.1 successful response body."""
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if id_token is not None:
        body["id_token"] = id_token
    return body
