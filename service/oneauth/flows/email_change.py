"""Changing a user's email address: re-authenticate, confirm the new address.

The request needs a live session and the current password (re-authentication,
ASVS 6.2.x/7.5.1). The new address gets a link (1 hour) and a code (10
minutes, with the request's flow token); the old address gets a notice at
once and another when the change is done. If the new address already belongs
to another account of this app, its owner is told and nothing else happens;
the requester gets the same answer either way (P4).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from oneauth import audit, webhooks
from oneauth.apps.models import AppRecord
from oneauth.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidLinkOrCode,
    InvalidToken,
    TooManyRequests,
    ValidationFailed,
)
from oneauth.flows.common import busy, session_id_of, settle_attempt
from oneauth.flows.mailing import (
    CODE_TTL,
    Mailer,
    mask_email,
    normalize_or_fail,
    redeem,
    too_many,
    with_query,
)
from oneauth.identity import addresses, one_time, throttle
from oneauth.identity import users as users_repo
from oneauth.identity.passwords import HasherBusy
from oneauth.identity.users import normalize_email
from oneauth.mail import outbox
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.verifier import AccessTokenClaims

LINK_TTL = 60 * 60
PURPOSE: one_time.Purpose = "change_email"


async def request(
    services: Services,
    app: AppRecord,
    claims: AccessTokenClaims,
    new_email: str,
    password: str,
    meta: audit.RequestMeta,
    *,
    redirect_uri: str | None = None,
) -> dict[str, Any]:
    new_n = normalize_or_fail(new_email)
    m = Mailer(services, app)
    # P6, before anything is counted or verified: a refused destination costs no attempt.
    base = m.link_base("email/confirm", redirect_uri)
    sid = session_id_of(claims)
    names = throttle.Names(services.settings.master_key, app.app_id)
    async with services.router.enter(app) as conn:
        live = await sessions.active_session_user(conn, sid)
        user = await users_repo.by_id(conn, claims.sub)
        old_n = users_repo.stored_email_key(user.email) if user else claims.sub
        keys = throttle.ThrottleKeys.for_login(names, old_n, meta.ip_hash)
        usable = live is not None and user is not None and str(live["id"]) == claims.sub
        # The login's counters (P8): reserved before the verify, only when one runs.
        reservation = await throttle.reserve(conn, keys) if usable and new_n != old_n else None
    if live is None or user is None or str(live["id"]) != claims.sub:
        raise InvalidToken("the session behind this token has ended")
    if reservation is None:
        raise ValidationFailed("that is already the account's address", extra={"field": "email"})
    if not reservation.allowed:
        raise TooManyRequests(
            "too many failed attempts; wait before trying again",
            headers={"retry-after": str(reservation.retry_after)},
        )
    try:
        ok = bool(user.password_hash) and await services.hasher.verify(
            user.password_hash or "", password
        )
    except HasherBusy:
        await settle_attempt(services, app, reservation, verified=False)
        raise busy() from None
    flow, token, code = one_time.new_secret(), one_time.new_secret(), one_time.new_code()
    flow_hash = m.macs.flow(PURPOSE, flow)
    mail_wait: int | None = None
    async with services.router.enter(app) as conn:
        if not ok:  # the reservation counted the failure
            await _audit(conn, meta, user.sub, "failure", {"reason": "invalid_credentials"})
        else:
            await throttle.succeeded(conn, reservation)
            mail_wait = await m.throttled(conn, new_n, meta, "user.email_change_request")
            if mail_wait is None:
                taken = await users_repo.by_email(conn, new_n)
                if taken is not None:
                    notice = m.draft("change_email_taken", taken.email, ttl=LINK_TTL)
                    await outbox.queue(conn, app.app_id, taken.email, notice)
                else:
                    issue = one_time.Issue(
                        PURPOSE,
                        token_hash=m.macs.link(PURPOSE, token),
                        code_hash=m.macs.code(PURPOSE, flow_hash, code),
                        flow_hash=flow_hash,
                        ttl=LINK_TTL,
                        code_ttl=CODE_TTL,
                        new_email=new_email.strip(),
                    )
                    await one_time.issue_for_user(conn, user.id, old_n, issue)
                    confirm = m.draft(
                        "change_email_confirm",
                        new_email.strip(),
                        context={"link_minutes": LINK_TTL // 60, "code_minutes": CODE_TTL // 60},
                        secrets={"link": with_query(base, token=token), "code": code},
                        ttl=LINK_TTL,
                    )
                    await outbox.queue(conn, app.app_id, new_email.strip(), confirm)
                    notice = m.draft(
                        "change_email_notice",
                        user.email,
                        context={
                            "new_email_masked": mask_email(new_email),
                            "recover_url": m.page("recover"),
                        },
                    )
                    await outbox.queue(conn, app.app_id, user.email, notice)
                await _audit(conn, meta, user.sub, "success", {"stage": "requested"})
    if not ok:
        raise InvalidCredentials("the current password is not right")
    if mail_wait is not None:
        raise too_many(mail_wait)
    return {"flow_token": flow, "code_expires_in": CODE_TTL}


async def confirm(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    token: str | None = None,
    flow_token: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    m = Mailer(services, app)
    changed_to: str | None = None
    try:
        async with services.router.enter(app) as conn:
            result = await redeem(
                conn, m.macs, PURPOSE, token=token, flow_token=flow_token, code=code
            )
            found = result.found
            if found is not None and found.new_email is not None:
                new_email = found.new_email
                if await addresses.change(
                    conn,
                    found.user_id,
                    old_normalized=found.email,
                    email=new_email,
                    email_normalized=normalize_email(new_email),
                ):
                    changed_to = new_email
                    await webhooks.emit(
                        conn,
                        app,
                        "user.email_changed",
                        {"user_id": str(found.user_id), "email": new_email},
                    )
                    # Links sent to the old address die with it (they are bound
                    # to it); use them up anyway so nothing pending remains.
                    await one_time.retire_for_user(
                        conn,
                        found.user_id,
                        [
                            "change_email",
                            "reset_password",
                            "magic_link",
                            "email_otp",
                            "verify_email",
                        ],
                    )
                    notice = m.draft(
                        "email_changed",
                        found.user_email,
                        context={"new_email_masked": mask_email(new_email)},
                    )
                    await outbox.queue(conn, app.app_id, found.user_email, notice)
            await _audit(
                conn,
                meta,
                str(found.user_id) if found else None,
                "success" if changed_to else "failure",
                {"stage": "confirmed", "reason": result.reason},
            )
    except asyncpg.UniqueViolationError:
        raise EmailTaken("another account took this address meanwhile") from None
    if changed_to is None:
        raise InvalidLinkOrCode("the link or code is invalid, used or expired; ask for a new one")
    return {"email": changed_to, "email_verified": True}


async def _audit(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    sub: str | None,
    outcome: audit.Outcome,
    details: dict[str, Any],
) -> None:
    await audit.record(
        conn,
        "user.email_change",
        outcome,
        meta,
        actor_type="user" if sub else None,
        actor_id=sub,
        target_type="user" if sub else "one_time_token",
        target_id=sub,
        details=details,
    )
