"""Pieces every flow uses: starting a session, authenticating a bearer token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import (
    Forbidden,
    InvalidToken,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WrongClient,
)
from oneauth.identity import throttle
from oneauth.identity.passwords import HasherBusy
from oneauth.identity.users import User
from oneauth.oauth.clients import Client
from oneauth.orgs import claims as org_claims
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.tokens.issue import Issuer, token_response
from oneauth.verifier import AccessTokenClaims, VerificationError


def busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The service is busy verifying passwords; retry shortly", headers={"retry-after": "1"}
    )


__all__ = [
    "Bearer",
    "HasherBusy",
    "authenticate_bearer",
    "busy",
    "settle_attempt",
    "start_session",
]


async def settle_attempt(
    services: Services, app: AppRecord, reservation: throttle.Reservation, *, verified: bool
) -> None:
    """Settle a throttle reservation in a transaction of its own (P8), for a flow
    that stops between the verify and its own write: ``verified`` when the
    password was right, else no password was checked (hasher busy)."""
    async with services.router.enter(app) as conn:
        if verified:
            await throttle.succeeded(conn, reservation)
        else:
            await throttle.cancel(conn, reservation)


async def start_session(
    conn: asyncpg.Connection,
    issuer: Issuer,
    *,
    user: User,
    client: Client,
    amr: list[str],
    scope: str,
    meta: audit.RequestMeta,
    auth_time: datetime | None = None,
    org_id: str | None = None,
) -> tuple[dict[str, Any], sessions.Session]:
    """Create a session with its first refresh token and an access token.

    ``auth_time``: when the user authenticated, if earlier than now (a browser
    session's sign-in, for the authorization code flow). ``org_id``: the
    organization chosen for this sign-in (issue 13): the session (refresh
    family) is for it and the access token carries its claims; raises
    ``OrgUnavailable`` when the user may not have a token for it (unknown,
    suspended, not a member), before anything is written. The token carries the
    user's app ``roles`` in any case, and ``permissions`` when asked for."""
    policy = issuer.policy
    permissions = org_claims.wants_permissions(scope, policy.token_permissions)
    idle_ttl = client.refresh_token_ttl or policy.refresh_idle_ttl
    refresh: str | None = None
    new = sessions.NewSession(
        user_id=user.id,
        client_id=client.client_id,
        amr=amr,
        absolute_ttl=policy.session_absolute_ttl,
        ip_hash=meta.ip_hash,
        user_agent=meta.user_agent,
        auth_time=auth_time,
    )
    if org_id is None and not permissions and "refresh_token" in client.grant_types:
        # The common sign-in: session, refresh token and roles in one statement.
        session, refresh, roles = await sessions.start_with_refresh(
            conn, new, scope=scope, idle_ttl=idle_ttl
        )
        authz = org_claims.Claims(roles=roles)
    else:
        authz = await org_claims.for_user(conn, user.id, org_id=org_id, permissions=permissions)
        session = await sessions.create_session(conn, new, org_id=authz.org_id)
        if "refresh_token" in client.grant_types:
            refresh = await sessions.issue_refresh(conn, session, scope=scope, idle_ttl=idle_ttl)
    ttl = client.access_token_ttl or policy.access_token_ttl
    access, _ = issuer.access_token(
        sub=user.sub,
        client_id=client.client_id,
        scope=scope,
        ttl=ttl,
        sid=str(session.id),
        amr=amr,
        auth_time=int(session.auth_time.timestamp()),
        email_verified=user.email_verified,
        authz=authz.token_claims(),
    )
    return token_response(access, ttl, scope, refresh_token=refresh), session


async def first_party_sign_in(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    *,
    amr: list[str],
    method: str,
    meta: audit.RequestMeta,
) -> dict[str, Any]:
    """Sign a user in to the app's first-party client: session, tokens, audit row.

    Shared by password login and signup, magic links and email codes, so every
    way in starts the same kind of session and leaves the same audit trail.
    """
    tokens, _ = await first_party_session(
        services, app, conn, user, amr=amr, method=method, meta=meta
    )
    return tokens


async def first_party_session(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    *,
    amr: list[str],
    method: str,
    meta: audit.RequestMeta,
) -> tuple[dict[str, Any], sessions.Session]:
    """``first_party_sign_in`` that also returns the session (signup binds it, P7)."""
    client = await services.clients.default_client(conn, app.app_id)
    if client is None:
        raise ValidationFailed("this app has no first-party client; create one with the CLI")
    issuer = await services.issuer(app, conn)
    tokens, session = await start_session(
        conn,
        issuer,
        user=user,
        client=client,
        amr=amr,
        scope=" ".join(sorted(client.scopes)),
        meta=meta,
    )
    await audit.record(
        conn,
        "auth.login",
        "success",
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="session",
        target_id=str(session.id),
        details={"method": method},
    )
    return tokens, session


@dataclass(frozen=True, slots=True)
class Bearer:
    """The caller of a /v1 route: a verified user access token of this app.

    ``first_party``: the token's client is one of the app's own (flag set by the
    operator, client enabled). ``user``: the live session's user row, when the
    route asked for a live session.
    """

    claims: AccessTokenClaims
    first_party: bool
    user: asyncpg.Record | None


async def authenticate_bearer(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    token: str | None,
    *,
    first_party_only: bool = True,
    live_session: bool = True,
) -> Bearer:
    """Verify a Bearer access token of this app (RFC 6750) for a first-party route.

    The one door of every /v1 route that takes a token; the route declares what
    it needs. User tokens only: a client-credentials token acts for no user (T4).
    ``first_party_only`` (default): the token must have been issued to one of the
    app's first-party clients; a third-party client's token is refused with 403
    ``wrong_client``, because the first-party API (password, email, consents) is
    not part of what a user grants to other clients. ``live_session`` (default):
    the session behind the token must not have ended (logout, revocation,
    password change): an access token outlives its session by up to its
    lifetime, and nothing that changes the account may ride on that (S3).
    Another app's tokens fail verification (B1: issuer, audience, app_id pinned).
    """
    realm = f'Bearer realm="{app.app_id}"'
    if token is None:
        raise Unauthorized(
            "send an access token: Authorization: Bearer <token>",
            headers={"www-authenticate": realm},
        )
    keys = await services.keys.get(app, conn)
    try:
        claims = keys.verifier.verify(token)
    except VerificationError as exc:
        raise InvalidToken(
            f"the access token failed the {exc.check} check",
            headers={"www-authenticate": f'{realm}, error="invalid_token"'},
        ) from None
    if claims.is_client_token:
        raise Forbidden("this endpoint needs a user's access token, not a client's")
    client = await services.clients.get(conn, app.app_id, claims.client_id)
    first_party = client is not None and client.first_party and not client.disabled
    if first_party_only and not first_party:
        raise WrongClient(
            "this endpoint accepts only access tokens of the app's own (first-party) clients",
            headers={"www-authenticate": f'{realm}, error="insufficient_scope"'},
        )
    user = None
    if live_session:
        user = await sessions.active_session_user(conn, session_id_of(claims))
        if user is None or str(user["id"]) != claims.sub:
            raise InvalidToken(
                "the session behind this token has ended",
                headers={"www-authenticate": f'{realm}, error="invalid_token"'},
            )
    return Bearer(claims, first_party, user)


def session_id_of(claims: AccessTokenClaims) -> uuid.UUID:
    try:
        return uuid.UUID(claims.sid or "")
    except ValueError:
        raise InvalidToken("the access token has no session") from None
