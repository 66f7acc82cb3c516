"""Second-factor self-service and enrolment: ``/v1/mfa`` and the hosted enrolment page.

Who may change a user's factors (issue 12):

* the user's first-party access token, from a sign-in at most
  ``mfa_change_max_age`` seconds old (``auth_time``), and, once the user has a
  second factor (and the app asks for it), a sign-in that used it (``mfa`` in
  ``amr``); else 403 ``insufficient_user_authentication`` (RFC 9470). So a
  stolen password, or an old pre-MFA session, never adds or removes a factor;
* or, instead of a token, the ``flow_token`` of an enrolment flow (a sign-in
  the app's policy sent to enrolment): it may only start and confirm the
  first factor of a user who has none, and confirming completes the sign-in.

Removing a factor mails the user; removing the last one removes the recovery
codes with it (they back up a factor, they are not one).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    Conflict,
    FlowExpired,
    InsufficientUserAuthentication,
    InvalidCode,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from oneauth.flows import engine
from oneauth.flows.common import authenticate_bearer
from oneauth.flows.login import api_binding
from oneauth.flows.mailing import Mailer
from oneauth.identity import factors, throttle
from oneauth.identity import users as users_repo
from oneauth.identity.factors import Factor
from oneauth.identity.users import User
from oneauth.mail import outbox
from oneauth.services import Services
from oneauth.strategies import recovery_code, totp
from oneauth.tokens.issue import ACR_MFA
from oneauth.web import browser_session

FACTOR_KINDS = ("totp", "webauthn")  # the kinds that are a factor on their own
ENROL: tuple[engine.Kind, ...] = ("enrol",)
DEFAULT_TOTP_NAME = "Authenticator app"


@dataclass(frozen=True, slots=True)
class Actor:
    """Whoever changes the factors: the user, and the enrolment flow if that is
    what authorized the call (else the access token did)."""

    user: User
    flow: engine.Flow | None = None
    flow_token: str | None = None
    # The account page's browser session: a factor it adds counts for it (add_proof).
    browser_session_id: uuid.UUID | None = None


def has_factor(items: list[Factor]) -> bool:
    return any(f.confirmed and f.kind in FACTOR_KINDS for f in items)


def _challenge(app: AppRecord, detail: str, *, mfa: bool) -> InsufficientUserAuthentication:
    max_age = policy_of(app).mfa_change_max_age
    header = (
        f'Bearer realm="{app.app_id}", error="insufficient_user_authentication",'
        f' error_description="{detail}", max_age="{max_age}"'
    )
    if mfa:
        header += f', acr_values="{ACR_MFA}"'
    return InsufficientUserAuthentication(
        f"{detail}: sign in again{' with your second factor' if mfa else ''}, then retry",
        headers={"www-authenticate": header},
        extra={"max_age": max_age, **({"acr_values": ACR_MFA} if mfa else {})},
    )


async def actor(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    *,
    bearer: str | None,
    flow_token: str | None = None,
    binding: str | None = None,
    change: bool = True,
) -> Actor:
    """Authorize a factor call (see the module docstring); ``binding``: a hosted
    page's browser binding (default: the first-party API's)."""
    if flow_token is not None:
        flow = await engine.load(
            conn,
            flow_token,
            binding=binding or await api_binding(services, app, conn),
            kinds=ENROL,
        )
        user = await users_repo.by_id(conn, flow.user_id) if flow.user_id else None
        # Enrolment flows are for a first factor only: had the user meanwhile
        # enrolled one, this flow must not add another without it.
        if user is None or has_factor(await factors.of_user(conn, user.id)):
            raise FlowExpired()
        return Actor(user, flow, flow_token)
    caller = await authenticate_bearer(services, app, conn, bearer)
    user = await users_repo.by_id(conn, caller.claims.sub)
    if user is None:
        raise FlowExpired()
    if change:
        claims = caller.claims
        refused = change_refusal(
            app, claims.auth_time, claims.amr, await factors.of_user(conn, user.id)
        )
        if refused is not None:
            raise refused
    return Actor(user)


def change_refusal(
    app: AppRecord, auth_time: float | None, amr: Collection[str], items: list[Factor]
) -> InsufficientUserAuthentication | None:
    """Why a sign-in at ``auth_time`` with ``amr`` may not change the factors ``items``
    (None: it may): older than ``mfa_change_max_age``, or without the second factor
    the user has. The API and the hosted account page apply this one rule."""
    policy = policy_of(app)
    if auth_time is None or time.time() - auth_time > policy.mfa_change_max_age:
        return _challenge(app, "this change needs a recent sign-in", mfa=False)
    return second_factor_refusal(app, amr, items)


def second_factor_refusal(
    app: AppRecord, amr: Collection[str], items: list[Factor]
) -> InsufficientUserAuthentication | None:
    """Why a sign-in with ``amr`` may not make an account change (None: it may): the
    user has a second factor, the app asks for it, and this sign-in did not use it.
    Factor changes (``change_refusal``) and the sign-in address change (the way to
    a password reset) both apply it, so a one-factor session from before the user
    enrolled cannot move the account's recovery elsewhere (M5)."""
    if policy_of(app).mfa != "off" and has_factor(items) and "mfa" not in amr:
        return _challenge(app, "this change needs a sign-in with your second factor", mfa=True)
    return None


async def _audit(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    event: str,
    user: User,
    outcome: audit.Outcome = "success",
    **details: Any,
) -> None:
    await audit.record(
        conn,
        event,
        outcome,
        meta,
        actor_type="user",
        actor_id=user.sub,
        target_type="user",
        target_id=user.sub,
        details=details or None,
    )


# --- TOTP enrolment -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TotpStarted:
    factor_id: uuid.UUID
    secret: str
    otpauth_uri: str


async def totp_begin(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    bearer: str | None,
    flow_token: str | None = None,
    binding: str | None = None,
    name: str | None = None,
    user: User | None = None,
) -> TotpStarted:
    """A new unconfirmed TOTP factor: its seed (shown once) and otpauth URI.

    ``user``: the hosted account page's user (its browser session, whose recency
    that page checks with ``change_refusal``), instead of a Bearer token or flow."""
    if "totp" not in policy_of(app).mfa_factors:
        raise ValidationFailed("this app does not offer TOTP", extra={"field": "factor"})
    async with services.router.enter(app) as conn:
        who = (
            Actor(user)
            if user
            else await actor(
                services, app, conn, bearer=bearer, flow_token=flow_token, binding=binding
            )
        )
        factor_id = uuid.uuid4()
        secret = totp.new_secret()
        sealed = totp.seal(services.box, app.app_id, who.user.id, factor_id, secret)
        await factors.create_totp(
            conn,
            factor_id=factor_id,
            user_id=who.user.id,
            name=name or DEFAULT_TOTP_NAME,
            secret_sealed=sealed,
        )
        await _audit(conn, meta, "mfa.totp_started", who.user, factor_id=str(factor_id))
    uri = totp.provisioning_uri(secret, account=who.user.email, issuer=app.display_name)
    return TotpStarted(factor_id, secret, uri)


async def totp_pending(
    services: Services,
    app: AppRecord,
    *,
    flow_token: str | None,
    binding: str | None,
    factor_id: uuid.UUID,
    user: User | None = None,
) -> TotpStarted:
    """The enrolment an enrolment flow (or the account page's ``user``) started and
    has not confirmed yet, shown again (the hosted page after a wrong code: the user
    has already scanned the QR code)."""
    async with services.router.enter(app) as conn:
        who = (
            Actor(user)
            if user
            else await actor(
                services, app, conn, bearer=None, flow_token=flow_token, binding=binding
            )
        )
        factor = await factors.get(conn, who.user.id, factor_id)
    secret = None
    if factor is not None and factor.kind == "totp" and not factor.confirmed:
        secret = totp.open_secret(services.box, app.app_id, factor)
    if secret is None:
        raise FlowExpired()
    uri = totp.provisioning_uri(secret, account=who.user.email, issuer=app.display_name)
    return TotpStarted(factor_id, secret, uri)


@dataclass(frozen=True, slots=True)
class TotpConfirmed:
    factor_id: uuid.UUID
    recovery_codes: list[str] | None  # only when the set was created now
    issued: engine.Issued | None  # an enrolment flow's session


async def totp_confirm(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    factor_id: uuid.UUID,
    code: str,
    bearer: str | None,
    flow_token: str | None = None,
    binding: str | None = None,
    browser: Request | None = None,
    user: User | None = None,
    browser_session_id: uuid.UUID | None = None,
) -> TotpConfirmed:
    """Activate a TOTP factor with one valid code; with an enrolment flow, complete
    its sign-in (``browser``: a hosted page's browser session, else tokens).
    ``user``: the account page's user, as in ``totp_begin``, and
    ``browser_session_id`` its session, which the code proves the factor for."""
    names = throttle.Names(services.settings.master_key, app.app_id)
    cleaned = totp.clean(code)
    result: TotpConfirmed | None = None
    refused: throttle.FactorReservation | None = None
    pending: engine.Pending | None = None
    async with services.router.enter(app) as conn:
        who = (
            Actor(user, browser_session_id=browser_session_id)
            if user
            else await actor(
                services, app, conn, bearer=bearer, flow_token=flow_token, binding=binding
            )
        )
        user = who.user
        reservation = await throttle.reserve_second_factor(conn, names, user.sub)
        factor = await factors.get(conn, user.id, factor_id, lock=True)
        if not reservation.allowed:
            refused = reservation
        elif (
            factor is not None
            and factor.kind == "totp"
            and not factor.confirmed
            and cleaned is not None
            and await totp.check_code(conn, services.box, app.app_id, factor, cleaned, confirm=True)
        ):
            await throttle.second_factor_succeeded(conn, reservation)
            codes = None
            if not await factors.of_user(conn, user.id, kind="recovery_codes"):
                codes = recovery_code.new_codes()
                hashes = recovery_code.hashes_of(
                    services.settings.master_key, app.app_id, user.id, codes
                )
                await factors.replace_recovery_codes(conn, user.id, hashes)
            await _audit(conn, meta, "mfa.totp_confirmed", user, factor_id=str(factor_id))
            if who.browser_session_id is not None:
                await browser_session.add_proof(conn, who.browser_session_id, ["otp"])
            issued = None
            if who.flow is not None:
                flow = await engine.satisfy(conn, who.flow, "totp", ["otp"], user.id)
                outcome = await engine.complete(
                    services,
                    app,
                    conn,
                    flow,
                    meta=meta,
                    method="+".join([*sorted(who.flow.factors), "totp"]),
                    flow_token=who.flow_token,
                    browser=browser,
                    details={"enrolled": "totp"},
                )
                if isinstance(outcome, engine.Pending):
                    pending = outcome
                else:
                    issued = outcome
            result = TotpConfirmed(factor_id, codes, issued)
        else:
            if who.flow is not None:
                await engine.count_attempt(conn, who.flow)
            await _audit(
                conn,
                meta,
                "mfa.totp_confirmed",
                user,
                "denied" if refused else "failure",
                reason="throttled" if refused else "invalid_code",
            )
    if refused is not None:
        raise TooManyRequests(
            "too many wrong codes; wait before trying again",
            headers={"retry-after": str(refused.retry_after)},
        )
    if pending is not None:
        raise pending.error()
    if result is None:
        raise InvalidCode("the code is not right (check the device's clock), or already used")
    return result


# --- recovery codes, listing, renaming, removing ---------------------------------------


async def regenerate_recovery_codes(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    bearer: str | None,
    user: User | None = None,
) -> list[str]:
    """A new set of ten codes; every code of the old set stops working.
    ``user``: the account page's user, as in ``totp_begin``."""
    async with services.router.enter(app) as conn:
        who = Actor(user) if user else await actor(services, app, conn, bearer=bearer)
        if not has_factor(await factors.of_user(conn, who.user.id)):
            raise Conflict("recovery codes back up a second factor: enrol TOTP or a passkey first")
        codes = recovery_code.new_codes()
        hashes = recovery_code.hashes_of(
            services.settings.master_key, app.app_id, who.user.id, codes
        )
        await factors.replace_recovery_codes(conn, who.user.id, hashes)
        await _audit(conn, meta, "mfa.recovery_codes_regenerated", who.user)
    return codes


@dataclass(frozen=True, slots=True)
class Listed:
    factor: Factor
    codes_left: int | None


async def list_factors(
    services: Services, app: AppRecord, *, bearer: str | None, user: User | None = None
) -> tuple[list[Listed], User]:
    """Every factor of the signed-in user, of every kind (passkeys too).

    ``user``: the hosted account page's user (its browser session), instead of a
    Bearer token; that page checks the sign-in's recency itself (web/account.py)."""
    async with services.router.enter(app) as conn:
        who = Actor(user) if user else await actor(services, app, conn, bearer=bearer, change=False)
        out = []
        for f in await factors.of_user(conn, who.user.id):
            left = (
                await factors.recovery_codes_left(conn, f.id)
                if f.kind == "recovery_codes"
                else None
            )
            out.append(Listed(f, left))
    return out, who.user


async def rename(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    bearer: str | None,
    factor_id: uuid.UUID,
    name: str,
    user: User | None = None,
) -> Listed:
    async with services.router.enter(app) as conn:
        who = Actor(user) if user else await actor(services, app, conn, bearer=bearer)
        factor = await factors.rename(conn, who.user.id, factor_id, name)
        if factor is None:
            raise NotFound("no such factor")
        await _audit(conn, meta, "mfa.factor_renamed", who.user, factor_id=str(factor_id))
        left = (
            await factors.recovery_codes_left(conn, factor.id)
            if factor.kind == "recovery_codes"
            else None
        )
    return Listed(factor, left)


async def remove(
    services: Services,
    app: AppRecord,
    meta: audit.RequestMeta,
    *,
    bearer: str | None,
    factor_id: uuid.UUID,
    user: User | None = None,
) -> None:
    """Remove one factor; the last one takes the recovery codes along. Mails the user."""
    async with services.router.enter(app) as conn:
        who = Actor(user) if user else await actor(services, app, conn, bearer=bearer)
        mine = await factors.lock_user_factors(conn, who.user.id)
        target = next((f for f in mine if f.id == factor_id), None)
        if target is None:
            raise NotFound("no such factor")
        rest = [f for f in mine if f.id != factor_id]
        last = target.confirmed and target.kind in FACTOR_KINDS and not has_factor(rest)
        await factors.delete(conn, who.user.id, factor_id)
        if last:
            for f in rest:
                if f.kind == "recovery_codes":
                    await factors.delete(conn, who.user.id, f.id)
        await _audit(
            conn,
            meta,
            "mfa.factor_removed",
            who.user,
            factor_id=str(factor_id),
            kind=target.kind,
            last=last,
        )
        if target.confirmed:
            m = Mailer(services, app)
            notice = m.draft(
                "mfa_factor_removed",
                who.user.email,
                context={"factor_name": target.name, "last": last},
            )
            await outbox.queue(conn, app.app_id, who.user.email, notice)
