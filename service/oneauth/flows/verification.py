"""Email verification: at signup, on request (resend), by link or by code.

At signup the new user gets a link (24 hours) and a 6-digit code (10 minutes,
only together with the flow token the signup response carried). Signing up
with an address that already has an account sends that account a notice
instead, and answers exactly as for a new address (P4, ASVS 6.3.8).

The first proof of the mailbox clears a password set before it and ends the
sessions started before it (P7, ``addresses.mailbox_proven``), unless the code
or link comes with the flow token of the signup that set the password.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidLinkOrCode
from oneauth.flows.mailing import (
    CODE_TTL,
    Mailer,
    normalize_or_fail,
    redeem,
    too_many,
)
from oneauth.identity import addresses, one_time
from oneauth.identity import users as users_repo
from oneauth.identity.users import User, normalize_email
from oneauth.mail import outbox
from oneauth.services import Services

LINK_TTL = 24 * 3600
PURPOSE: one_time.Purpose = "verify_email"


def _secrets(m: Mailer, base: str) -> tuple[str, one_time.Issue, dict[str, str]]:
    return m.link_and_code(PURPOSE, base, link_ttl=LINK_TTL)


_CONTEXT = {"link_minutes": LINK_TTL // 60, "code_minutes": CODE_TTL // 60}


async def queue_for_new_user(
    conn: asyncpg.Connection,
    services: Services,
    app: AppRecord,
    user: User,
    meta: audit.RequestMeta,
    *,
    session_id: uuid.UUID | None = None,
) -> str:
    """Called in the signup transaction: store a token, queue the mail; the flow token.

    The token remembers the password this signup set and its session
    (``session_id``, if it signed in), so that a proof with this flow token keeps
    them (P7)."""
    m = Mailer(services, app)
    email_n = normalize_email(user.email)
    flow, issue, secrets = _secrets(m, m.page("verify"))
    issue = replace(issue, signup=True, signup_session_id=session_id)
    if await m.throttled(conn, email_n, meta, "email.verify_request") is None:
        await one_time.issue_for_user(conn, user.id, email_n, issue)
        draft = m.draft("verify_email", user.email, context=_CONTEXT, secrets=secrets, ttl=LINK_TTL)
        await outbox.queue(conn, app.app_id, user.email, draft)
    return flow


async def queue_signup_notice(
    conn: asyncpg.Connection,
    services: Services,
    app: AppRecord,
    email_normalized: str,
    meta: audit.RequestMeta,
) -> str:
    """Signup with a taken address: tell its owner; hand back a flow token that matches nothing."""
    m = Mailer(services, app)
    flow = one_time.new_secret()
    existing = await users_repo.by_email(conn, email_normalized)
    throttled = await m.throttled(conn, email_normalized, meta, "email.verify_request")
    if existing is not None and throttled is None:
        draft = m.draft(
            "signup_existing",
            existing.email,
            context={"recover_url": m.page("recover")},
            ttl=LINK_TTL,
        )
        await outbox.queue(conn, app.app_id, existing.email, draft)
    return flow


async def request(
    services: Services,
    app: AppRecord,
    email: str,
    meta: audit.RequestMeta,
    *,
    redirect_uri: str | None = None,
) -> dict[str, Any]:
    """Send a new verification mail to an unverified account; the same answer for any address."""
    email_n = normalize_or_fail(email)
    m = Mailer(services, app)
    base = m.link_base("verify", redirect_uri)
    async with services.router.enter(app) as conn:
        flow, issue, secrets = _secrets(m, base)
        draft = m.draft("verify_email", email_n, context=_CONTEXT, secrets=secrets, ttl=LINK_TTL)
        wait = await m.request_for_address(
            conn, email_n, issue, draft, meta, "email.verify_request", only_unverified=True
        )
    if wait is not None:
        raise too_many(wait)
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
    async with services.router.enter(app) as conn:
        result = await redeem(conn, m.macs, PURPOSE, token=token, flow_token=flow_token, code=code)
        found = result.found
        proof = None
        if found is not None:
            signup = None
            if result.flow_bound and found.signup_password_fingerprint is not None:
                signup = addresses.SignupBinding(
                    bytes(found.signup_password_fingerprint), found.signup_session_id
                )
            proof = await addresses.mailbox_proven(
                conn,
                found.user_id,
                found.email,
                method="verify_link" if token else "verify_code",
                meta=meta,
                signup=signup,
            )
            await one_time.retire_for_user(conn, found.user_id, [PURPOSE])
        await audit.record(
            conn,
            "email.verify",
            "success" if found else "failure",
            meta,
            actor_type="user" if found else None,
            actor_id=str(found.user_id) if found else None,
            target_type="user" if found else "one_time_token",
            target_id=str(found.user_id) if found else None,
            details={"method": "link" if token else "code", "reason": result.reason},
        )
    if found is None:
        raise InvalidLinkOrCode("the link or code is invalid, used or expired; ask for a new one")
    # The mailbox owner may learn that a password set by someone else was cleared:
    # a front end then offers to set one (reset flow).
    return {
        "email": found.user_email,
        "email_verified": True,
        "password_cleared": proof is not None and proof.password_cleared,
    }
