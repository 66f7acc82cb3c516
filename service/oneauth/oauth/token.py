"""The token endpoint's grants (RFC 6749 section 4, 6) and revocation (RFC 7009).

authorization_code lives in ``oneauth.oauth.authorize`` with the rest of the
code flow; this module holds refresh_token and client_credentials.

Organizations (issue 13): every refresh recomputes the roles and org claims
(``oneauth.orgs.claims``), so a removed role or membership shows at the next
refresh. A refresh may name ``organization_id`` (or ``organization``, the
slug): another org the user belongs to switches the family to it, no new
sign-in. An org that is unknown here, suspended, or that the user is not a
member of fails with ``invalid_request`` (not ``invalid_grant``: client
libraries drop a refresh token on invalid_grant, and this one is still good)
and the rotation is undone, so the presented token stays unused and the family
keeps working for its other orgs. The same holds for a plain refresh of a
family whose current org the user has left or that was suspended: it fails
the same way (never silently drops to no org, which would change the tenant
under the client's feet); the client names another org or signs in again.
"""

from __future__ import annotations

import uuid

import asyncpg

from oneauth import audit
from oneauth.api.models import TokenSet
from oneauth.apps.models import AppRecord
from oneauth.db.groupcommit import UNOPENED
from oneauth.oauth.clients import USER_SCOPES, Client
from oneauth.oauth.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
)
from oneauth.oauth.models import UNSET, Introspection, TokenForm
from oneauth.orgs import claims as org_claims
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.tokens.issue import CLIENT_CREDENTIALS
from oneauth.verifier import VerificationError


def requested_scope(raw: str | None, allowed: frozenset[str]) -> list[str] | None:
    """The ``scope`` parameter as a list, refused if it asks beyond ``allowed``."""
    if raw is None:
        return None
    wanted = raw.split()
    if not wanted or len(wanted) != len(set(wanted)):
        raise InvalidScope("scope must list distinct scopes separated by spaces")
    beyond = set(wanted) - allowed
    if beyond:
        raise InvalidScope(f"scope beyond what this client may ask for: {' '.join(sorted(beyond))}")
    return wanted


async def _refresh_failed(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    client: Client,
    reason: str,
    session_id: uuid.UUID | None = None,
) -> None:
    await audit.record(
        conn,
        "token.refresh",
        "failure",
        meta,
        actor_type="client",
        actor_id=client.client_id,
        target_type=None if session_id is None else "session",
        target_id=None if session_id is None else str(session_id),
        details={"reason": reason},
    )


ORG_UNAVAILABLE = (
    "the organization is unknown in this app, suspended, or the user is not a member;"
    " the refresh token is still valid for the user's other organizations"
)
ORG_NEEDS_MFA = (
    "the organization requires a sign-in with a second factor; sign the user in again"
    " with organization_id (the refresh token is still valid for the user's other organizations)"
)


def _org_asked(form: TokenForm) -> tuple[str | None, str | None]:
    """(org id, org slug) named by the refresh request, at most one of them."""
    if form.organization_id is not None and form.organization is not None:
        raise InvalidRequest("send organization_id or organization (a slug), not both")
    if form.organization_id == "" or form.organization == "":
        raise InvalidRequest("organization_id and organization must not be empty")
    return form.organization_id, form.organization


async def refresh_grant(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    client: Client,
    form: TokenForm,
    meta: audit.RequestMeta,
) -> TokenSet | OAuthError:
    """Rotate a refresh token. An error is returned, not raised, so that the
    family revocation and audit row of a replay commit before the 400."""
    if "refresh_token" not in client.grant_types:
        raise UnauthorizedClient("this client may not use the refresh_token grant")
    asked_id, asked_slug = _org_asked(form)
    raw = form.refresh_token or ""
    scope = requested_scope(form.scope, client.scopes)
    issuer = await services.issuer(app, conn)
    idle = client.refresh_token_ttl or issuer.policy.refresh_idle_ttl
    outcome = await sessions.rotate(
        conn,
        raw,
        client_id=client.client_id,
        idle_ttl=idle,
        narrowed_scope=" ".join(scope) if scope else None,
    )
    if isinstance(outcome, sessions.Replayed):
        await sessions.revoke_session(conn, outcome.session_id, reason="refresh_token_reuse")
        await audit.record(
            conn,
            "token.refresh_reuse",
            "denied",
            meta,
            actor_type="client",
            actor_id=client.client_id,
            target_type="session",
            target_id=str(outcome.session_id),
            details={"action": "session_revoked"},
        )
        return InvalidGrant("the refresh token is invalid")
    if isinstance(outcome, sessions.Superseded):
        # Lost a race with another request of this client (sessions.REUSE_GRACE_SECONDS)
        # that asked for another scope, or one from before successors were kept: no
        # tokens, and no revocation, so the winner's new refresh token keeps working.
        await _refresh_failed(conn, meta, client, "superseded", outcome.session_id)
        return InvalidGrant(
            "the refresh token was just rotated by a concurrent request; use the newest one"
        )
    if outcome == "scope":
        raise InvalidScope("scope beyond what the refresh token was granted")
    if outcome is None:
        await _refresh_failed(conn, meta, client, "invalid_grant")
        return InvalidGrant("the refresh token is invalid")
    ttl = client.access_token_ttl or issuer.policy.access_token_ttl
    session = outcome.session
    switching = asked_id is not None or asked_slug is not None
    permissions = org_claims.wants_permissions(outcome.scope, issuer.policy.token_permissions)
    try:
        if outcome.roles is not None and not (
            switching or permissions or session.org_id is not None
        ):
            authz = org_claims.Claims(roles=outcome.roles)  # read by the rotation
        else:
            authz = await org_claims.for_user(
                conn,
                session.user_id,
                org_id=asked_id if switching else session.org_id,
                org_slug=asked_slug,
                permissions=permissions,
            )
    except org_claims.OrgRefused as exc:
        refused: tuple[str, str, str] | None = ("org_unavailable", exc.reason, ORG_UNAVAILABLE)
    else:
        # An org that asks for a second factor gets org-scoped tokens only from a
        # sign-in that used one (the authorization request steps up; a refresh
        # cannot), also when the org began to ask after the family was made.
        refused = None
        if authz.org_mfa_required and "mfa" not in session.amr:
            refused = ("org_mfa_required", "mfa_required", ORG_NEEDS_MFA)
    if refused is not None:
        reason, org_reason, description = refused
        # The session row is still locked: undo the rotation, keep the audit row. A
        # retry wrote nothing (its rotation committed earlier, its successor is live).
        if not outcome.retried:
            await sessions.unrotate(conn, outcome)
        await audit.record(
            conn,
            "token.refresh",
            "failure",
            meta,
            actor_type="user",
            actor_id=str(session.user_id),
            target_type="session",
            target_id=str(session.id),
            details={
                "reason": reason,
                "org": org_reason,
                "switch": switching,
                "client_id": client.client_id,
            },
        )
        return InvalidRequest(description)
    if authz.org_id != session.org_id:
        await sessions.set_org(conn, session.id, authz.org_id)
    access, _ = issuer.access_token(
        sub=str(session.user_id),
        client_id=client.client_id,
        scope=outcome.scope,
        ttl=ttl,
        sid=str(session.id),
        amr=session.amr,
        auth_time=int(session.auth_time.timestamp()),
        email_verified=outcome.email_verified,
        authz=authz.token_claims(),
    )
    details: dict[str, str] = {"client_id": client.client_id}
    if outcome.retried:
        details["retry"] = "same_successor"  # sessions.REUSE_GRACE_SECONDS
    if authz.org_id != session.org_id:
        details.update(org_from=session.org_id or "", org_to=authz.org_id or "")
    await audit.record(
        conn,
        "token.refresh",
        "success",
        meta,
        actor_type="user",
        actor_id=str(session.user_id),
        target_type="session",
        target_id=str(session.id),
        details=details,
    )
    return TokenSet(
        access_token=access,
        token_type="Bearer",
        expires_in=ttl,
        scope=outcome.scope,
        refresh_token=outcome.refresh_token,
    )


async def client_credentials_grant(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    client: Client,
    form: TokenForm,
    meta: audit.RequestMeta,
) -> TokenSet:
    """RFC 6749 section 4.4: a token for the client itself, never a refresh token."""
    if CLIENT_CREDENTIALS not in client.grant_types or not client.is_confidential:
        raise UnauthorizedClient("this client may not use the client_credentials grant")
    service_scopes = client.scopes - set(USER_SCOPES)
    scope = requested_scope(form.scope, frozenset(service_scopes))
    granted = " ".join(scope if scope is not None else sorted(service_scopes))
    authz = None
    if client.org_id is not None:
        # An org client (clients create --org): that org only, never while suspended.
        try:
            authz = (await org_claims.for_client(conn, client.org_id)).token_claims()
        except org_claims.OrgUnavailable:
            raise UnauthorizedClient("this client's organization is suspended") from None
    issuer = await services.issuer(app, conn)
    ttl = client.access_token_ttl or issuer.policy.access_token_ttl
    access, claims = issuer.access_token(
        sub=client.client_id,
        client_id=client.client_id,
        scope=granted,
        ttl=ttl,
        grant=CLIENT_CREDENTIALS,
        authz=authz,
    )
    issued = {
        "actor_type": "client",
        "actor_id": client.client_id,
        "target_type": "token",
        "target_id": claims["jti"],
        "details": {"grant": CLIENT_CREDENTIALS, "org_id": client.org_id},
    }
    if conn is UNOPENED:
        # Everything was cached: the row goes in a group commit (committed on return).
        await audit.record_committed(
            services.audit_writes, app, "token.issue", "success", meta, **issued
        )
    else:
        await audit.record(conn, "token.issue", "success", meta, **issued)
    return TokenSet(access_token=access, token_type="Bearer", expires_in=ttl, scope=granted)


async def revoke(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    client: Client,
    token: str,
    meta: audit.RequestMeta,
) -> None:
    """RFC 7009: end the grant behind a refresh or access token of this client.

    Unknown tokens, other clients' tokens and other apps' tokens are ignored
    silently (section 2.2): the answer is always 200.
    """
    session_id = None
    if token.startswith(sessions.REFRESH_PREFIX):
        found = await sessions.session_of_refresh(conn, token)
        if found is not None and found[1] == client.client_id:
            session_id = found[0]
    else:
        keys = await services.keys.get(app, conn)
        try:
            claims = keys.verifier.verify(token)
        except VerificationError:
            claims = None
        if claims is not None and claims.client_id == client.client_id and claims.sid:
            session_id = uuid.UUID(claims.sid)
    if session_id is None:
        return
    ended = await sessions.revoke_session(conn, session_id, reason="revoked")
    await audit.record(
        conn,
        "token.revoke",
        "success",
        meta,
        actor_type="client",
        actor_id=client.client_id,
        target_type="session",
        target_id=str(session_id),
        details={"was_active": ended},
    )


# The access token claims introspection tells (RFC 7662 section 2.2): the model's
# members, so a claim the model does not name is never sent undocumented.
_CLAIMS = tuple(f for f in Introspection.__struct_fields__ if f not in ("active", "token_type"))


async def introspect(
    services: Services, app: AppRecord, conn: asyncpg.Connection, token: str
) -> Introspection:
    """RFC 7662: ``active: false`` for anything not live in this app, whoever made it."""
    inactive = Introspection(active=False)
    issuer_url = services.settings.issuer_for(app.app_id)
    if token.startswith(sessions.REFRESH_PREFIX):
        info = await sessions.refresh_token_info(conn, token)
        if info is None:
            return inactive
        return Introspection(
            active=True,
            token_type="refresh_token",
            client_id=info["client_id"],
            scope=info["scope"],
            sub=str(info["user_id"]),
            sid=str(info["sid"]),
            iat=int(info["created_at"].timestamp()),
            exp=int(info["expires_at"].timestamp()),
            iss=issuer_url,
            app_id=app.app_id,
            org_id=info["org_id"] if info["org_id"] is not None else UNSET,
        )
    keys = await services.keys.get(app, conn)
    try:
        claims = keys.verifier.verify(token)
    except VerificationError:
        return inactive
    if claims.is_client_token:
        client = await services.clients.get(conn, app.app_id, claims.client_id)
        if client is None or client.disabled:
            return inactive
    else:
        try:
            sid = uuid.UUID(claims.sid or "")
        except ValueError:
            return inactive
        if await sessions.active_session_user(conn, sid) is None:
            return inactive
    raw = claims.raw
    return Introspection(
        active=True, token_type="Bearer", **{name: raw.get(name, UNSET) for name in _CLAIMS}
    )
