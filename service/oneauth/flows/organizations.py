"""The signed-in user's organization calls (issue 13): what ``/v1/orgs`` does per route.

Each call authenticates the user's own first-party token, checks the org
permission the route needs (never a role name) and calls the org services of
:mod:`oneauth.orgs`, in one transaction of the app (the router). The services refuse a
member who gives roles beyond their own permissions and a change that leaves the
org without a member manager (``last_org_manager``); on top of them one rule of a
member acting (not the operator): they change or remove only members whose
permissions are within their own, so a member with ``org:members:write`` alone
cannot demote or remove an admin. Leaving (removing oneself) needs no permission.
"""

from __future__ import annotations

import uuid

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    FeatureDisabled,
    InvalidToken,
    MemberNotFound,
    OrgNotFound,
    OrgPermissionRequired,
)
from oneauth.flows.common import authenticate_bearer
from oneauth.flows.mailing import Mailer
from oneauth.http.requests import bearer_token, request_meta
from oneauth.identity import one_time
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.orgs import domains, invitations
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import Actor
from oneauth.services import Services

READ = "org:read"
MEMBERS_WRITE = "org:members:write"
INVITATIONS_WRITE = "org:invitations:write"


class _Call:
    """One request's caller inside the app's transaction."""

    def __init__(
        self, services: Services, app: AppRecord, request: Request, conn: asyncpg.Connection
    ) -> None:
        self.services, self.app, self.conn = services, app, conn
        self.meta = request_meta(request, app.app_id, services.ip_hash_key)
        self.user: User | None = None

    async def authenticate(self, request: Request) -> User:
        caller = await authenticate_bearer(
            self.services, self.app, self.conn, bearer_token(request)
        )
        user = await users_repo.by_id(self.conn, uuid.UUID(caller.claims.sub))
        if user is None:  # removed since the session check: the token is dead too
            raise InvalidToken("the session behind this token has ended")
        self.user = user
        return user

    @property
    def actor(self) -> Actor:
        assert self.user is not None
        return Actor.user(self.user.id)


async def my_orgs(
    services: Services, app: AppRecord, request: Request
) -> list[tuple[orgs.Org, orgs.Membership]]:
    async with services.router.enter(app) as conn:
        user = await _Call(services, app, request, conn).authenticate(request)
        found = []
        for org, _roles in await orgs.of_user(conn, user.id):
            membership = await orgs.membership(conn, org.id, user.id)
            if membership is not None:
                found.append((org, membership))
        return found


async def create_org(
    services: Services, app: AppRecord, request: Request, name: str, slug: str | None
) -> tuple[orgs.Org, orgs.Membership]:
    """A new org with the caller as its admin, where the app allows it."""
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        if not policy_of(app).org_self_service:
            raise FeatureDisabled(
                "organizations of this app are created by its operator (org_self_service is off)"
            )
        org = await orgs.create(
            conn, name=name, slug=slug, creator=user.id, actor=call.actor, meta=call.meta
        )
        membership = await orgs.membership(conn, org.id, user.id)
        assert membership is not None
        return org, membership


async def member_of(
    services: Services, app: AppRecord, request: Request, org_id: str, permission: str
) -> tuple[orgs.Org, orgs.Membership]:
    async with services.router.enter(app) as conn:
        user = await _Call(services, app, request, conn).authenticate(request)
        return await orgs.require(conn, org_id, user.id, permission)


async def members(
    services: Services,
    app: AppRecord,
    request: Request,
    org_id: str,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[orgs.Member], str | None]:
    async with services.router.enter(app) as conn:
        user = await _Call(services, app, request, conn).authenticate(request)
        org, _ = await orgs.require(conn, org_id, user.id, READ)
        return await orgs.members(conn, org.id, cursor=cursor, limit=limit)


def _within(holder: orgs.Membership, target: orgs.Membership, what: str) -> None:
    beyond = sorted(target.permissions - holder.permissions)
    if beyond:
        raise OrgPermissionRequired(
            f"{what} would need permissions you do not hold: {', '.join(beyond)}",
            extra={"permission": beyond[0]},
        )


async def set_roles(
    services: Services,
    app: AppRecord,
    request: Request,
    org_id: str,
    user_id: uuid.UUID,
    roles: list[str],
) -> tuple[orgs.Membership, str]:
    """Replace a member's org roles; the member's membership and email."""
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        org, mine = await orgs.require(conn, org_id, user.id, MEMBERS_WRITE)
        target = await orgs.membership(conn, org.id, user_id)
        if target is None:
            raise MemberNotFound(extra={"field": "user_id"})
        _within(mine, target, "changing this member")
        updated = await orgs.set_member_roles(
            conn, org.id, user_id, roles, actor=call.actor, meta=call.meta
        )
        member = await users_repo.by_id(conn, user_id)
        return updated, member.email if member else ""


async def remove(
    services: Services, app: AppRecord, request: Request, org_id: str, user_id: uuid.UUID
) -> None:
    """Remove a member, or (the caller's own id) leave the org: leaving needs no permission."""
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        if user_id == user.id:
            org = await orgs.get(conn, org_id)
            target = None if org is None else await orgs.membership(conn, org.id, user.id)
            if org is None or target is None:
                raise OrgNotFound(extra={"field": "org_id"})
        else:
            org, mine = await orgs.require(conn, org_id, user.id, MEMBERS_WRITE)
            target = await orgs.membership(conn, org.id, user_id)
            if target is None:
                raise MemberNotFound(extra={"field": "user_id"})
            _within(mine, target, "removing this member")
        await orgs.remove_member(conn, org.id, user_id, actor=call.actor, meta=call.meta)


def _macs(services: Services, app: AppRecord) -> one_time.Macs:
    return one_time.Macs(services.settings.master_key, app.app_id)


async def invite(
    services: Services,
    app: AppRecord,
    request: Request,
    org_id: str,
    email: str,
    roles: list[str] | None,
) -> invitations.Invitation:
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        org, _ = await orgs.require(conn, org_id, user.id, INVITATIONS_WRITE)
        made, _raw = await invitations.invite(
            Mailer(services, app),
            conn,
            org.id,
            email,
            roles=roles,
            invited_by=call.actor,
            meta=call.meta,
        )
        return made


async def open_invitations(
    services: Services, app: AppRecord, request: Request, org_id: str
) -> list[invitations.Invitation]:
    async with services.router.enter(app) as conn:
        user = await _Call(services, app, request, conn).authenticate(request)
        org, _ = await orgs.require(conn, org_id, user.id, INVITATIONS_WRITE)
        return await invitations.list_open(conn, org.id)


async def revoke_invitation(
    services: Services, app: AppRecord, request: Request, org_id: str, invitation_id: uuid.UUID
) -> None:
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        org, _ = await orgs.require(conn, org_id, user.id, INVITATIONS_WRITE)
        await invitations.revoke(conn, org.id, invitation_id, actor=call.actor, meta=call.meta)


async def accept(
    services: Services, app: AppRecord, request: Request, token: str
) -> tuple[orgs.Org, orgs.Membership]:
    """Accept with the mailed token: the invited address, verified (the service checks)."""
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        return await accept_as(services, app, conn, user, token, call.meta)


async def accept_as(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    token: str,
    meta: audit.RequestMeta,
) -> tuple[orgs.Org, orgs.Membership]:
    """``accept`` for a user already known (the hosted page's browser session)."""
    membership = await invitations.accept(conn, _macs(services, app), token, user, meta=meta)
    org = await orgs.get(conn, membership.org_id)
    assert org is not None
    return org, membership


async def offers(services: Services, app: AppRecord, request: Request) -> list[orgs.Org]:
    async with services.router.enter(app) as conn:
        user = await _Call(services, app, request, conn).authenticate(request)
        return await domains.offers(conn, user)


async def join_offered(
    services: Services, app: AppRecord, request: Request, org_id: str
) -> tuple[orgs.Org, orgs.Membership]:
    async with services.router.enter(app) as conn:
        call = _Call(services, app, request, conn)
        user = await call.authenticate(request)
        membership = await domains.join_offered(conn, user, org_id, meta=call.meta)
        org = await orgs.get(conn, membership.org_id)
        assert org is not None
        return org, membership
