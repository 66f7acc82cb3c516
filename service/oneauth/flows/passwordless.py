"""Passwordless sign-in by magic link or by email one-time code (per-app switch).

Both live 10 minutes, work once, and only together with the flow token that
the request handed to the client (the hosted pages keep it in a cookie): a
link forwarded to, or intercepted by, someone else signs nobody in (P5, ASVS
6.6.2 "bound to the request"). A code allows a few attempts, then is dead.
The request answers the same whether or not the address has an account, and
sends nothing to unknown addresses (P4). Using a link or code proves the
mailbox, so the address counts as verified from then on; if that is its first
proof, a password set before it is cleared and earlier sessions end (P7: the
flow's requester is not known to be whoever set that password).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import FeatureDisabled, InvalidLinkOrCode, ValidationFailed
from oneauth.flows.mailing import (
    CODE_TTL,
    Mailer,
    normalize_or_fail,
    redeem,
    too_many,
    with_query,
)
from oneauth.identity import addresses, one_time
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.services import Services

LINK_TTL = 10 * 60
Method = Literal["link", "code"]
T = TypeVar("T")


def _enabled(app: AppRecord) -> None:
    if not policy_of(app).passwordless:
        raise FeatureDisabled("passwordless sign-in is not enabled for this app")


async def start(
    services: Services,
    app: AppRecord,
    email: str,
    method: str,
    meta: audit.RequestMeta,
    *,
    redirect_uri: str | None = None,
) -> dict[str, Any]:
    _enabled(app)
    if method not in ("link", "code"):
        raise ValidationFailed("method must be link or code", extra={"field": "method"})
    email_n = normalize_or_fail(email)
    m = Mailer(services, app)
    flow = one_time.new_secret()
    purpose: one_time.Purpose = "magic_link" if method == "link" else "email_otp"
    flow_hash = m.macs.flow(purpose, flow)
    if method == "link":
        token = one_time.new_secret()
        issue = one_time.Issue(
            purpose,
            token_hash=m.macs.link(purpose, token),
            code_hash=None,
            flow_hash=flow_hash,
            ttl=LINK_TTL,
        )
    else:
        code = one_time.new_code()
        issue = one_time.Issue(
            purpose,
            token_hash=None,
            code_hash=m.macs.code(purpose, flow_hash, code),
            flow_hash=flow_hash,
            ttl=CODE_TTL,
            code_ttl=CODE_TTL,
        )
    base = m.link_base("signin/link", redirect_uri)
    secrets = {"link": with_query(base, token=token)} if method == "link" else {"code": code}
    async with services.router.enter(app) as conn:
        draft = m.draft(
            purpose,
            email_n,
            context={"link_minutes": LINK_TTL // 60, "code_minutes": CODE_TTL // 60},
            secrets=secrets,
            ttl=issue.ttl,
        )
        wait = await m.request_for_address(
            conn,
            email_n,
            issue,
            draft,
            meta,
            "auth.passwordless_request",
            details={"method": method},
        )
    if wait is not None:
        raise too_many(wait)
    return {"flow_token": flow, "method": method, "expires_in": issue.ttl}


SignIn = Callable[[asyncpg.Connection, User, list[str]], Awaitable[T]]


async def complete_with(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    sign_in: SignIn[T],
    *,
    flow_token: str,
    token: str | None = None,
    code: str | None = None,
) -> T:
    """Redeem a magic link or code (with its flow token); ``sign_in`` makes the session.

    ``sign_in`` runs in the same transaction (API: tokens; hosted pages: a
    browser session) and audits the success with its session id.
    """
    _enabled(app)
    purpose: one_time.Purpose = "magic_link" if token is not None else "email_otp"
    m = Mailer(services, app)
    done: tuple[T] | None = None
    async with services.router.enter(app) as conn:
        result = await redeem(
            conn,
            m.macs,
            purpose,
            token=token,
            flow_token=flow_token,
            code=code,
            link_needs_flow=True,
        )
        found = result.found
        user = await users_repo.by_id(conn, found.user_id) if found else None
        if found is not None and user is not None:
            # Using the link or code proved the mailbox (P7: before the new session).
            await addresses.mailbox_proven(conn, user.id, found.email, method=purpose, meta=meta)
            user = await users_repo.by_id(conn, user.id)
            assert user is not None
            done = (await sign_in(conn, user, ["email"] if purpose == "magic_link" else ["otp"]),)
            await users_repo.touch_login(conn, user.id)
        else:
            await audit.record(
                conn,
                "auth.login",
                "failure",
                meta,
                target_type="one_time_token",
                details={"method": purpose, "reason": result.reason},
            )
    if done is None:
        raise InvalidLinkOrCode("the link or code is invalid, used or expired; ask for a new one")
    return done[0]


async def complete(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    flow_token: str,
    token: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """Exchange a magic link or code (with its flow token) for the app's tokens,
    through the flow engine (403 ``mfa_required`` when a second factor is needed)."""
    from oneauth.flows import login  # the engine's strategies import this module

    if token is not None:
        payload = {"flow_token": flow_token, "token": token}
        return await login.sign_in(services, app, "magic_link", payload, meta, method="magic_link")
    payload = {"flow_token": flow_token, "code": code or ""}
    return await login.sign_in(services, app, "email_code", payload, meta, method="email_otp")
