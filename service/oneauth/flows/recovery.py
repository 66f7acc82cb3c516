"""Password reset by email: request, then a new password with the link or the code.

* The request answers the same for every address, known or not, and does the
  same work (one statement that stores a token only if the account exists;
  P4, ASVS 6.3.8).
* A reset link works once, for 30 minutes; the code for 10 minutes, a few
  attempts, and only with the flow token of the request (P5, ASVS 6.4.1).
* It is bound to the app (its schema, and the MAC) and to the password hash
  of the moment it was issued: a password change in between kills it.
* Completing a reset ends every session and refresh family of the user in
  this app (S3, ASVS 7.4.1) and does NOT sign the user in: no tokens come back.
  When MFA exists the user will still pass it at the next sign-in, so a reset
  can never bypass a second factor (P5, ASVS 6.4.3).
"""

from __future__ import annotations

from typing import Any

from oneauth import audit, webhooks
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidLinkOrCode, WeakPasswordError
from oneauth.flows.common import busy
from oneauth.flows.mailing import (
    CODE_TTL,
    Mailer,
    normalize_or_fail,
    redeem,
    too_many,
)
from oneauth.identity import addresses, one_time
from oneauth.identity import users as users_repo
from oneauth.identity.passwords import HasherBusy, WeakPassword, check_password
from oneauth.services import Services
from oneauth.sessions import everywhere

LINK_TTL = 30 * 60
PURPOSE: one_time.Purpose = "reset_password"


async def request(
    services: Services,
    app: AppRecord,
    email: str,
    meta: audit.RequestMeta,
    *,
    redirect_uri: str | None = None,
) -> dict[str, Any]:
    email_n = normalize_or_fail(email)
    m = Mailer(services, app)
    base = m.link_base("reset", redirect_uri)
    async with services.router.enter(app) as conn:
        # Secrets are made before we know whether the account exists: same work.
        flow, issue, secrets = m.link_and_code(PURPOSE, base, link_ttl=LINK_TTL)
        draft = m.draft(
            "reset_password",
            email_n,
            context={"link_minutes": LINK_TTL // 60, "code_minutes": CODE_TTL // 60},
            secrets=secrets,
            ttl=LINK_TTL,
        )
        wait = await m.request_for_address(
            conn, email_n, issue, draft, meta, "password.reset_request"
        )
    if wait is not None:
        raise too_many(wait)
    return {"flow_token": flow, "code_expires_in": CODE_TTL}


async def complete(
    services: Services,
    app: AppRecord,
    new_password: str,
    meta: audit.RequestMeta,
    *,
    token: str | None = None,
    flow_token: str | None = None,
    code: str | None = None,
) -> None:
    """Set the new password; end every session. Returns nothing: no sign-in (see above)."""
    m = Mailer(services, app)
    # 1. Check the link or code without using it up (a wrong code counts).
    async with services.router.enter(app) as conn:
        result = await redeem(
            conn, m.macs, PURPOSE, token=token, flow_token=flow_token, code=code, consume=False
        )
        if result.found is None:
            await _audit_failure(conn, meta, result.reason, token)
    found = result.found
    if found is None:
        raise InvalidLinkOrCode("the link or code is invalid, used or expired; ask for a new one")
    # 2. Judge and hash the new password with no connection held.
    try:
        check_password(new_password, email=found.user_email, app_name=app.display_name)
    except WeakPassword as exc:
        raise WeakPasswordError(exc.message, extra={"reason": exc.reason_code}) from None
    try:
        new_hash = await services.hasher.hash(new_password)
    except HasherBusy:
        raise busy() from None
    # 3. Use it up (again under lock: it may have been used or unbound meanwhile).
    async with services.router.enter(app) as conn:
        again = await one_time.by_id(conn, found.id)
        usable = (
            again is not None
            and again.bound_ok
            and (again.link_usable if token is not None else not again.used and again.code_live)
            and await one_time.consume(conn, found.id)
        )
        if usable:
            # The mailbox answered: the address is proven (P7: audited when first).
            await addresses.mailbox_proven(
                conn,
                found.user_id,
                found.email,
                method=f"reset_{'link' if token else 'code'}",
                meta=meta,
            )
            await users_repo.set_password(conn, found.user_id, new_hash)
            await webhooks.emit(
                conn, app, "user.password_changed", {"user_id": str(found.user_id), "via": "reset"}
            )
            await one_time.retire_for_user(
                conn, found.user_id, [PURPOSE, "magic_link", "email_otp"]
            )
            ended = await everywhere.end_all(conn, found.user_id, reason="password_reset")
            await audit.record(
                conn,
                "password.reset",
                "success",
                meta,
                actor_type="user",
                actor_id=str(found.user_id),
                target_type="user",
                target_id=str(found.user_id),
                details={"method": "link" if token else "code", "sessions_ended": ended},
            )
        else:
            await _audit_failure(conn, meta, "used_concurrently", token)
    if not usable:
        raise InvalidLinkOrCode("the link or code is invalid, used or expired; ask for a new one")


async def _audit_failure(
    conn: Any, meta: audit.RequestMeta, reason: str, token: str | None
) -> None:
    await audit.record(
        conn,
        "password.reset",
        "failure",
        meta,
        target_type="one_time_token",
        details={"method": "link" if token else "code", "reason": reason},
    )
