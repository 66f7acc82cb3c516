"""Invitations to an organization (issue 13).

An invitation names one email address and the org roles to give. Its token
(256 bits, ``one_time.new_secret``) lives only in the mail; the table keeps a
keyed MAC of it (``Macs.link("org_invitation", token)``: key derived from the
master key, bound to the app id), so a database dump holds no usable link and
app A's token never matches at app B (B1, P5).

* single use under concurrency: the row is locked, then ``UPDATE ... WHERE
  accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()``; of two
  accepts at once exactly one wins;
* expiring (default 7 days), revocable, listable; inviting the same address
  again revokes the open invitation and mails a new one;
* accepting needs a signed-in user whose email is exactly the invited one
  (normalized, B5) and verified.

Errors the invitee may see: ``invitation_invalid`` (unknown, used, expired,
revoked, another app's, a suspended org: one answer), ``invitation_email_mismatch``,
``email_not_verified``.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Final, Protocol

import asyncpg

from oneauth import audit, webhooks
from oneauth.apps.models import AppRecord
from oneauth.errors import (
    AlreadyMember,
    EmailNotVerified,
    InvitationEmailMismatch,
    InvitationInvalid,
    InvitationNotFound,
    OrgSuspended,
    ValidationFailed,
)
from oneauth.identity import one_time
from oneauth.identity.users import InvalidEmail, User, normalize_email
from oneauth.mail import outbox
from oneauth.orgs import service
from oneauth.orgs.actor import Actor
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings

PURPOSE: Final = "org_invitation"
MAIL_KIND: Final = "org_invitation"
ACCEPT_PAGE: Final = "invitations/accept"
DEFAULT_TTL: Final = 7 * 24 * 3600
MIN_TTL: Final = 3600
MAX_TTL: Final = 30 * 24 * 3600


class Sender(Protocol):
    """What inviting needs of the mail side: ``flows.mailing.Mailer`` in a request,
    ``OutboxSender`` at the CLI."""

    @property
    def app(self) -> AppRecord: ...

    @property
    def macs(self) -> one_time.Macs: ...

    def page(self, path: str) -> str: ...

    def draft(
        self,
        kind: str,
        recipient: str,
        *,
        context: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        ttl: int | None = None,
    ) -> outbox.Draft: ...


@dataclass
class OutboxSender:
    """A ``Sender`` without the HTTP service's objects (the CLI, the admin API)."""

    settings: Settings
    app: AppRecord
    box: SecretBox

    @cached_property
    def macs(self) -> one_time.Macs:
        return one_time.Macs(self.settings.master_key, self.app.app_id)

    def page(self, path: str) -> str:
        return f"{self.settings.issuer_for(self.app.app_id)}/{path}"

    def draft(
        self,
        kind: str,
        recipient: str,
        *,
        context: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        ttl: int | None = None,
    ) -> outbox.Draft:
        return outbox.draft(
            self.box,
            self.app.app_id,
            kind,
            recipient,
            context=context,
            secrets=secrets,
            max_attempts=self.settings.email_max_attempts,
            ttl=ttl,
        )


@dataclass(frozen=True, slots=True)
class Invitation:
    id: uuid.UUID
    org_id: str
    email: str
    roles: list[str]
    invited_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: uuid.UUID | None
    revoked_at: datetime | None
    expired: bool

    @property
    def state(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expired else "open"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "org_id": self.org_id,
            "email": self.email,
            "roles": self.roles,
            "invited_by": self.invited_by,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
            "accepted_by": str(self.accepted_by) if self.accepted_by else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


_SELECT = """
SELECT i.id, i.org_id, i.email,
       coalesce((SELECT array_agg(r.name ORDER BY r.name) FROM org_invitation_roles ir
                 JOIN org_roles r ON r.id = ir.org_role_id
                 WHERE ir.invitation_id = i.id), '{}') AS roles,
       i.invited_by, i.created_at, i.expires_at, i.accepted_at, i.accepted_by, i.revoked_at,
       i.expires_at <= now() AS expired
FROM org_invitations i
"""


def _invitation(row: asyncpg.Record) -> Invitation:
    return Invitation(
        id=row["id"],
        org_id=row["org_id"],
        email=row["email"],
        roles=list(row["roles"]),
        invited_by=row["invited_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        accepted_at=row["accepted_at"],
        accepted_by=row["accepted_by"],
        revoked_at=row["revoked_at"],
        expired=row["expired"],
    )


def mask_email(email: str) -> str:
    """``j***@example.com``: enough to recognise, not enough to harvest."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


async def invite(
    sender: Sender,
    conn: asyncpg.Connection,
    org_id: str,
    email: str,
    *,
    roles: list[str] | None = None,
    invited_by: Actor,
    ttl: int = DEFAULT_TTL,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> tuple[Invitation, str]:
    """Invite ``email`` with these org roles (none: the org's default role at accept)
    and queue the mail with the link ``{issuer}/invitations/accept?token=...``.

    Returns the invitation and the raw token (in the mail; the operator's CLI
    shows it once). An open invitation to the same address is revoked first.
    """
    if not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise ValidationFailed(f"ttl must be {MIN_TTL}..{MAX_TTL} seconds", extra={"field": "ttl"})
    try:
        email_n = normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(str(exc), extra={"field": "email"}) from None
    # The org row lock serializes invitations of one org: two invites of one
    # address at once replace each other instead of hitting the unique index.
    org = await service.require_org(conn, org_id, lock=True)
    if not org.active:
        raise OrgSuspended()
    role_ids = await service.role_ids(conn, org.id, roles or [])
    await service.check_grantable(conn, org.id, invited_by, role_ids)
    member = await conn.fetchval(
        "SELECT 1 FROM org_members m JOIN users u ON u.id = m.user_id"
        " WHERE m.org_id = $1 AND u.email_normalized = $2",
        org.id,
        email_n,
    )
    if member:
        raise AlreadyMember("this address belongs to a member already", extra={"field": "email"})
    replaced = await conn.fetch(
        "UPDATE org_invitations SET revoked_at = now() WHERE org_id = $1"
        " AND email_normalized = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id",
        org.id,
        email_n,
    )
    token = one_time.new_secret()
    invitation_id = await conn.fetchval(
        "INSERT INTO org_invitations (org_id, email, email_normalized, token_hash, invited_by,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING id",
        org.id,
        email.strip(),
        email_n,
        sender.macs.link(PURPOSE, token),
        invited_by.label,
        ttl,
    )
    if role_ids:
        await conn.execute(
            "INSERT INTO org_invitation_roles (invitation_id, org_role_id)"
            " SELECT $1, unnest($2::uuid[])",
            invitation_id,
            role_ids,
        )
    link = f"{sender.page(ACCEPT_PAGE)}?token={token}"
    draft = sender.draft(
        MAIL_KIND,
        email.strip(),
        context={
            "org_name": org.branding.get("display_name") or org.name,
            "org_slug": org.slug,
            "valid_days": max(1, ttl // 86400),
        },
        secrets={"link": link},
        ttl=ttl,
    )
    await outbox.queue(conn, sender.app.app_id, email.strip(), draft)
    await audit.record(
        conn,
        "org.invitation.create",
        "success",
        meta,
        actor_type=invited_by.type,
        actor_id=invited_by.id,
        target_type="organization",
        target_id=org.id,
        details={
            "invitation_id": str(invitation_id),
            "roles": sorted(roles or []),
            "replaced": [str(r["id"]) for r in replaced],
        },
    )
    row = await conn.fetchrow(_SELECT + " WHERE i.id = $1", invitation_id)
    assert row is not None
    return _invitation(row), token


async def list_open(
    conn: asyncpg.Connection, org_id: str, *, include_closed: bool = False
) -> list[Invitation]:
    """Open invitations of an org (newest first); ``include_closed``: every one."""
    org = await service.require_org(conn, org_id)
    rows = await conn.fetch(
        _SELECT + " WHERE i.org_id = $1 AND ($2 OR (i.accepted_at IS NULL"
        " AND i.revoked_at IS NULL AND i.expires_at > now())) ORDER BY i.created_at DESC, i.id",
        org.id,
        include_closed,
    )
    return [_invitation(r) for r in rows]


async def revoke(
    conn: asyncpg.Connection,
    org_id: str,
    invitation_id: uuid.UUID | str,
    *,
    actor: Actor,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> Invitation:
    """Revoke an open invitation of this org; ``InvitationNotFound`` otherwise."""
    org = await service.require_org(conn, org_id)
    try:
        key = invitation_id if isinstance(invitation_id, uuid.UUID) else uuid.UUID(invitation_id)
    except ValueError:
        raise InvitationNotFound(extra={"field": "invitation_id"}) from None
    done = await conn.fetchval(
        "UPDATE org_invitations SET revoked_at = now() WHERE id = $1 AND org_id = $2"
        " AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id",
        key,
        org.id,
    )
    if done is None:
        raise InvitationNotFound(extra={"field": "invitation_id"})
    await audit.record(
        conn,
        "org.invitation.revoke",
        "success",
        meta,
        actor_type=actor.type,
        actor_id=actor.id,
        target_type="organization",
        target_id=org.id,
        details={"invitation_id": str(key)},
    )
    row = await conn.fetchrow(_SELECT + " WHERE i.id = $1", key)
    assert row is not None
    return _invitation(row)


@dataclass(frozen=True, slots=True)
class Preview:
    """What the hosted acceptance page may show before the invitee signs in."""

    org_id: str
    org_name: str
    org_slug: str
    branding: dict[str, Any]
    email_masked: str
    state: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "org_name": self.org_name,
            "org_slug": self.org_slug,
            "branding": self.branding,
            "email": self.email_masked,
            "state": self.state,
            "expires_at": self.expires_at.isoformat(),
        }


_BY_TOKEN = (
    _SELECT.replace(
        "FROM org_invitations i",
        ", i.email_normalized, o.status AS org_status"
        " FROM org_invitations i JOIN organizations o ON o.id = i.org_id",
    )
    + " WHERE i.token_hash = $1"
)


def _token_hash(macs: one_time.Macs, raw_token: str) -> bytes | None:
    if not isinstance(raw_token, str) or not 0 < len(raw_token) <= one_time.MAX_SECRET_INPUT:
        return None
    return macs.link(PURPOSE, raw_token)


async def peek(conn: asyncpg.Connection, macs: one_time.Macs, raw_token: str) -> Preview | None:
    """The invitation behind a token, for the acceptance page; None if unknown here."""
    token_hash = _token_hash(macs, raw_token)
    row = None if token_hash is None else await conn.fetchrow(_BY_TOKEN, token_hash)
    if row is None:
        return None
    found = _invitation(row)
    org = await service.get(conn, found.org_id)
    assert org is not None
    state = found.state if org.active or found.state != "open" else "unavailable"
    return Preview(
        org_id=org.id,
        org_name=org.branding.get("display_name") or org.name,
        org_slug=org.slug,
        branding=org.branding,
        email_masked=mask_email(found.email),
        state=state,
        expires_at=found.expires_at,
    )


async def accept(
    conn: asyncpg.Connection,
    macs: one_time.Macs,
    raw_token: str,
    user: User | uuid.UUID,
    *,
    meta: audit.RequestMeta = audit.SYSTEM,
) -> service.Membership:
    """Join the org as the invitation says; the token is used up.

    Refused without using it up: a wrong address (``invitation_email_mismatch``),
    an address not verified yet (``email_not_verified``; accept again once it is).
    """
    token_hash = _token_hash(macs, raw_token)
    row = (
        None
        if token_hash is None
        else await conn.fetchrow(_BY_TOKEN + " FOR UPDATE OF i", token_hash)
    )
    # Locked: a concurrent accept of the same token waits here and then reads
    # the row as the winner left it (accepted), so it is refused below.
    if row is None or row["org_status"] != "active":
        raise InvitationInvalid()
    found = _invitation(row)
    if found.state != "open":
        raise InvitationInvalid()
    user_id = user.id if isinstance(user, User) else user
    # Read again, locked: the address and its verification as they are now.
    current = await conn.fetchrow(
        "SELECT email_normalized, email_verified FROM users WHERE id = $1 AND status = 'active'"
        " FOR SHARE",
        user_id,
    )
    if current is None:
        raise InvitationInvalid()
    if not hmac.compare_digest(
        current["email_normalized"].encode(), row["email_normalized"].encode()
    ):
        raise InvitationEmailMismatch()
    if not current["email_verified"]:
        raise EmailNotVerified("confirm your email address, then accept the invitation again")
    used = await conn.fetchval(
        "UPDATE org_invitations SET accepted_at = now(), accepted_by = $2"
        " WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
        " RETURNING id",
        found.id,
        user_id,
    )
    if used is None:
        raise InvitationInvalid()
    org = await service.get(conn, found.org_id)
    assert org is not None
    membership = await service.join(
        conn,
        org,
        user_id,
        roles=found.roles or None,
        via="invitation",
        actor=Actor.user(user_id),
        meta=meta,
    )
    await audit.record(
        conn,
        "org.invitation.accept",
        "success",
        meta,
        actor_type="user",
        actor_id=str(user_id),
        target_type="organization",
        target_id=org.id,
        details={"invitation_id": str(found.id), "roles": membership.roles},
    )
    await webhooks.emit(
        conn,
        webhooks.app_of(conn),
        "invitation.accepted",
        {"org_id": org.id, "invitation_id": str(found.id), "user_id": str(user_id)},
    )
    return membership
