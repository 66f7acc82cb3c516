"""What the admin API does with an app's users (issue 15), in the guard's transaction.

Each function takes the connection (in the app's context) and the
:class:`~oneauth.admin.guard.AdminCaller`, changes what it must and records it in
the app's audit log with the acting client or operator (``admin.user.<verb>``),
so the change and its row commit together. Reused pieces: address
normalization and the password policy of sign-up, the sign-out-everywhere of a
password reset (:mod:`oneauth.sessions.everywhere`), the factor-removed mail of
the MFA flows. An id that is not a user of THIS app (another app's user, a
deleted one, not a UUID) is 404 ``user_not_found``: the schema holds this app's
users only (B1).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from oneauth import webhooks
from oneauth.account import linked
from oneauth.account import service as account
from oneauth.admin.guard import AdminCaller, audit
from oneauth.admin.models import UserCreate, UserUpdate
from oneauth.errors import EmailTaken, UserNotFound, ValidationFailed
from oneauth.flows.common import busy
from oneauth.flows.mailing import Mailer
from oneauth.flows.password import _check_new_password
from oneauth.identity import directory, factors
from oneauth.identity.passwords import HasherBusy
from oneauth.identity.users import InvalidEmail, normalize_email
from oneauth.mail import outbox
from oneauth.orgs import model as orgs
from oneauth.orgs import roles
from oneauth.services import Services
from oneauth.sessions import everywhere

__all__ = [
    "Detail",
    "create",
    "delete",
    "detail",
    "reset_mfa",
    "revoke_sessions",
    "sessions_of",
    "set_status",
    "update",
]


def user_id_of(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise UserNotFound("no such user in this app") from None


async def _locked(conn: asyncpg.Connection, user_id: uuid.UUID) -> asyncpg.Record:
    row = await directory.lock(conn, user_id)
    if row is None:
        raise UserNotFound("no such user in this app")
    return row


def _normalized(email: str) -> str:
    try:
        return normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(str(exc), extra={"field": "email"}) from None


async def create(
    services: Services, conn: asyncpg.Connection, caller: AdminCaller, body: UserCreate
) -> asyncpg.Record:
    """A new user of the app (sign-up policy and invitations do not apply: an
    operator creates it); the password, if any, meets the sign-up policy."""
    email_n = _normalized(body.email)
    password_hash = None
    if body.password is not None:
        _check_new_password(body.password, email_n, caller.app)
        try:
            # Inside the transaction (the guard's): admin creates are rare and
            # authenticated; the hasher's pool bounds the cost.
            password_hash = await services.hasher.hash(body.password)
        except HasherBusy:
            raise busy() from None
    row = await directory.insert(
        conn,
        email=body.email,
        email_normalized=email_n,
        email_verified=body.email_verified,
        password_hash=password_hash,
    )
    if row is None:
        # An admin may learn that an address is taken: 409, plainly.
        raise EmailTaken("a user with this email address already exists in this app")
    await audit(
        conn,
        caller,
        "admin.user.create",
        target_type="user",
        target_id=str(row["id"]),
        details={"password": password_hash is not None, "email_verified": body.email_verified},
    )
    await webhooks.emit(
        conn,
        caller.app,
        "user.created",
        {"user_id": str(row["id"]), "email": row["email"], "via": "admin"},
    )
    return row


async def update(
    conn: asyncpg.Connection, caller: AdminCaller, user_id: uuid.UUID, body: UserUpdate
) -> asyncpg.Record:
    current = await _locked(conn, user_id)
    email = body.email if isinstance(body.email, str) else None
    verified = body.email_verified if isinstance(body.email_verified, bool) else None
    email_n = _normalized(email) if email is not None else None
    changed = {
        name
        for name, value in (("email", email), ("email_verified", verified))
        if value is not None and value != current[name]
    }
    if email_n is not None and email_n == current["email_normalized"]:
        changed.discard("email")
        if email is not None and email.strip() != current["email"]:
            changed.add("email")  # same identity key, another spelling
    row = await directory.update(
        conn,
        user_id,
        email=email.strip() if email is not None else None,
        email_normalized=email_n,
        email_verified=verified,
    )
    if row is None:
        raise EmailTaken("another user of this app has this email address")
    await audit(
        conn,
        caller,
        "admin.user.update",
        target_type="user",
        target_id=str(user_id),
        details={"changed": sorted(changed)},
    )
    if "email" in changed:
        await webhooks.emit(
            conn, caller.app, "user.email_changed", {"user_id": str(user_id), "email": row["email"]}
        )
    return row


async def set_status(
    conn: asyncpg.Connection, caller: AdminCaller, user_id: uuid.UUID, status: str
) -> asyncpg.Record:
    """``disabled``: the user can no longer sign in or refresh, and every session
    and refresh family ends now (S3). ``active``: signing in works again (the
    ended sessions stay ended)."""
    current = await _locked(conn, user_id)
    ended = 0
    if status == "disabled":
        ended = await everywhere.end_all(conn, user_id, reason="admin_disable")
    row = await directory.update(conn, user_id, status=status)
    assert row is not None
    verb = "disable" if status == "disabled" else "enable"
    await audit(
        conn,
        caller,
        f"admin.user.{verb}",
        target_type="user",
        target_id=str(user_id),
        details={"was": current["status"], "sessions_ended": ended},
    )
    if status == "disabled" and current["status"] != "disabled":
        await webhooks.emit(conn, caller.app, "user.disabled", {"user_id": str(user_id)})
    return row


async def delete(conn: asyncpg.Connection, caller: AdminCaller, user_id: uuid.UUID) -> None:
    """Remove the user and everything of theirs in this app (sessions, tokens,
    factors, linked identities, org memberships, roles); the audit log keeps the
    row of the deletion under the user's id."""
    await _locked(conn, user_id)
    await directory.delete(conn, user_id)
    await audit(conn, caller, "admin.user.delete", target_type="user", target_id=str(user_id))
    await webhooks.emit(conn, caller.app, "user.deleted", {"user_id": str(user_id)})


async def revoke_sessions(conn: asyncpg.Connection, caller: AdminCaller, user_id: uuid.UUID) -> int:
    await _locked(conn, user_id)
    ended = await everywhere.end_all(conn, user_id, reason="admin_revoke")
    await audit(
        conn,
        caller,
        "admin.user.sessions_revoke",
        target_type="user",
        target_id=str(user_id),
        details={"sessions_ended": ended},
    )
    return ended


async def reset_mfa(
    services: Services, conn: asyncpg.Connection, caller: AdminCaller, user_id: uuid.UUID
) -> dict[str, int]:
    """Remove every TOTP factor, passkey and the recovery codes (a user who lost
    their devices); the user is mailed (the factor-removed notice) when they had
    a confirmed one, so a reset they did not ask for does not go unnoticed."""
    user = await _locked(conn, user_id)
    had = [f for f in await factors.of_user(conn, user_id) if f.confirmed]
    counts = await directory.delete_factors(conn, user_id)
    await audit(
        conn,
        caller,
        "admin.user.mfa_reset",
        target_type="user",
        target_id=str(user_id),
        details={"removed": counts},
    )
    if any(f.kind != "recovery_codes" for f in had):
        notice = Mailer(services, caller.app).draft(
            "mfa_factor_removed",
            user["email"],
            context={
                "factor_name": "Every second factor (reset by an administrator)",
                "last": True,
            },
        )
        await outbox.queue(conn, caller.app.app_id, user["email"], notice)
    return counts


@dataclass(frozen=True, slots=True)
class Detail:
    user: asyncpg.Record
    sessions: int
    factors: list[tuple[factors.Factor, int | None]]
    identities: list[linked.LinkedIdentity]
    orgs: list[tuple[orgs.Org, list[str]]]
    roles: list[str]
    permissions: list[str]


async def detail(conn: asyncpg.Connection, user_id: uuid.UUID) -> Detail:
    row = await directory.by_id(conn, user_id)
    if row is None:
        raise UserNotFound("no such user in this app")
    listed: list[tuple[factors.Factor, int | None]] = []
    for f in await factors.of_user(conn, user_id):
        left = await factors.recovery_codes_left(conn, f.id) if f.kind == "recovery_codes" else None
        listed.append((f, left))
    return Detail(
        user=row,
        sessions=await directory.count_live_sessions(conn, user_id),
        factors=listed,
        identities=await linked.of_user(conn, user_id),
        orgs=await orgs.of_user(conn, user_id),
        roles=await roles.roles_of(conn, user_id),
        permissions=await roles.permissions_of(conn, user_id),
    )


async def sessions_of(
    conn: asyncpg.Connection, user_id: uuid.UUID, after: dict[str, Any] | None, limit: int
) -> tuple[list[account.SessionItem], bool]:
    """A page of the user's live sessions in (created_at, id) order, and whether
    more follow. A user's live sessions are few: they are read at once (the
    account page's query) and paged here."""
    if await directory.by_id(conn, user_id) is None:
        raise UserNotFound("no such user in this app")
    items = sorted(await account.list_sessions(conn, user_id), key=lambda i: (i.created_at, i.id))
    if after is not None:
        start = (after["created_at"], after["id"])
        items = [i for i in items if (i.created_at, i.id) > start]
    return items[:limit], len(items) > limit
