"""Registering a passkey: who may, and what a registration completes (issue 12).

The same rules as every factor change (:func:`oneauth.flows.mfa.actor`): a
first-party access token from a recent sign-in (and, once the user has a second
factor, one that used it), or the ``flow_token`` of an enrolment flow (a sign-in
the policy sent to enrolment: the passkey is then the user's first factor and
registering it completes the sign-in). The account page authorizes with its
browser session instead (:mod:`oneauth.web.passkey_pages`), by the same rules.
The first second factor brings the recovery codes (shown once), as TOTP does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ApiError, InsufficientUserAuthentication, Unauthorized
from oneauth.flows import engine, mfa
from oneauth.identity import factors
from oneauth.identity import users as users_repo
from oneauth.identity.webauthn import Credential
from oneauth.services import Services
from oneauth.strategies import recovery_code, webauthn
from oneauth.web import browser_session

Authorize = Callable[[asyncpg.Connection], Awaitable[mfa.Actor]]


def by_token(
    services: Services,
    app: AppRecord,
    *,
    bearer: str | None,
    flow_token: str | None,
    binding: str | None = None,
) -> Authorize:
    """The API's caller: an enrolment ``flow_token``, else the Bearer token;
    ``binding``: a hosted page's browser binding of that flow (else the API's)."""

    async def authorize(conn: asyncpg.Connection) -> mfa.Actor:
        return await mfa.actor(
            services,
            app,
            conn,
            bearer=None if flow_token else bearer,
            flow_token=flow_token,
            binding=binding,
        )

    return authorize


def by_browser_session(app: AppRecord, request: Request) -> Authorize:
    """The account page's caller: its live browser session, held to the API's rules
    (recent sign-in; with a factor already enrolled, a sign-in that used one)."""

    async def authorize(conn: asyncpg.Connection) -> mfa.Actor:
        policy = policy_of(app)
        session = await browser_session.current(
            conn, request, app.app_id, idle_ttl=policy.refresh_idle_ttl
        )
        user = await users_repo.by_id(conn, session.user_id) if session else None
        if session is None or user is None:
            raise Unauthorized("sign in first")
        if time.time() - session.auth_time.timestamp() > policy.mfa_change_max_age:
            raise InsufficientUserAuthentication(
                f"sign in again (within the last {policy.mfa_change_max_age // 60} minutes)"
                " to add a passkey"
            )
        enrolled = mfa.has_factor(await factors.of_user(conn, user.id))
        if policy.mfa != "off" and enrolled and "mfa" not in session.amr:
            raise InsufficientUserAuthentication(
                "sign in with your second factor to add another passkey"
            )
        return mfa.Actor(user, browser_session_id=session.id)

    return authorize


async def registration_options(
    services: Services, app: AppRecord, authorize: Authorize
) -> dict[str, Any]:
    async with services.router.enter(app) as conn:
        who = await authorize(conn)
        return await webauthn.begin_registration(
            conn, services.settings, app, user_id=who.user.id, email=who.user.email
        )


@dataclass(frozen=True, slots=True)
class Registered:
    credential: Credential
    recovery_codes: list[str] | None  # only when the set was created now
    issued: engine.Issued | None  # the sign-in an enrolment flow completed


async def register(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    authorize: Authorize,
    *,
    credential: dict[str, Any],
    name: str | None,
    browser: Request | None = None,
) -> Registered:
    """Verify and store the new passkey; recovery codes if none; an enrolment flow's
    sign-in. A refused attestation still spends its challenge (committed, W3)."""
    refused: ApiError | None = None
    pending: engine.Pending | None = None
    result: Registered | None = None
    async with services.router.enter(app) as conn:
        who = await authorize(conn)
        user = who.user
        try:
            stored = await webauthn.finish_registration(
                conn,
                services.settings,
                app,
                user_id=user.id,
                credential=credential,
                name=name,
                meta=meta,
            )
        except ApiError as exc:
            refused = exc
        else:
            codes = None
            if not await factors.of_user(conn, user.id, kind="recovery_codes"):
                codes = recovery_code.new_codes()
                hashes = recovery_code.hashes_of(
                    services.settings.master_key, app.app_id, user.id, codes
                )
                await factors.replace_recovery_codes(conn, user.id, hashes)
            issued = None
            # Registering with user presence (and verification) proves the key.
            amr = webauthn.amr_of(stored, user_verified=stored.user_verified)
            if who.browser_session_id is not None:
                await browser_session.add_proof(conn, who.browser_session_id, amr)
            if who.flow is not None:
                flow = await engine.satisfy(conn, who.flow, webauthn.NAME, amr, user.id)
                outcome = await engine.complete(
                    services,
                    app,
                    conn,
                    flow,
                    meta=meta,
                    method="+".join([*sorted(who.flow.factors), webauthn.NAME]),
                    flow_token=who.flow_token,
                    browser=browser,
                    details={"enrolled": webauthn.NAME},
                )
                if isinstance(outcome, engine.Pending):
                    pending = outcome
                else:
                    issued = outcome
            result = Registered(stored, codes, issued)
    if refused is not None:
        raise refused
    if pending is not None:
        raise pending.error()
    assert result is not None
    return result
