"""Password sign-up, login, change and logout for the first-party API.

No enumeration (P4): an unknown email costs a dummy argon2 verify and gets the
same status, body and audit shape as a wrong password. Hashing runs on the
hasher's thread pool with no database connection held.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

import asyncpg

from oneauth import audit, metrics, webhooks
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    SignupDisabled,
    TooManyRequests,
    ValidationFailed,
    WeakPasswordError,
)
from oneauth.flows import verification
from oneauth.flows.common import (
    busy,
    session_id_of,
    settle_attempt,
)
from oneauth.identity import one_time, throttle
from oneauth.identity import users as users_repo
from oneauth.identity.passwords import HasherBusy, WeakPassword, check_password
from oneauth.identity.users import InvalidEmail, normalize_email
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.verifier import AccessTokenClaims

MAX_PASSWORD_INPUT = 1024  # longer input is refused before hashing (cost bound)
T = TypeVar("T")


def _check_new_password(password: str, email: str, app: AppRecord) -> None:
    try:
        check_password(password, email=email, app_name=app.display_name)
    except WeakPassword as exc:
        raise WeakPasswordError(exc.message, extra={"reason": exc.reason_code}) from None


class Invited(Protocol):
    """The open organization invitation a sign-up comes from (issue 13;
    :class:`oneauth.web.invitations.InvitedTo`)."""

    def admits(self, email_normalized: str) -> bool: ...


def ensure_self_signup(
    app: AppRecord, *, invitation: Invited | None = None, email_normalized: str | None = None
) -> None:
    """Refuse sign-up where the app is invitation-only (policy ``self_signup: false``).

    An open invitation (issue 13, organizations; the hosted invitation page's
    registration) lets its invitee register even then, with the invited address
    only: the link is not a pass for any other account.
    """
    if policy_of(app).self_signup:
        return
    if invitation is None or email_normalized is None or not invitation.admits(email_normalized):
        raise SignupDisabled("sign-up is by invitation only for this app")


# What a sign-up's session start returns: its result, and the token session the
# verification token should remember (P7), if it started one.
SignedUp = Callable[[asyncpg.Connection, users_repo.User], Awaitable[tuple[T, uuid.UUID | None]]]


async def register(
    services: Services,
    app: AppRecord,
    email: str,
    password: str,
    meta: audit.RequestMeta,
    sign_in: SignedUp[T] | None,
    *,
    invitation: Invited | None = None,
) -> tuple[users_repo.User | None, str, T | None]:
    """Create an account: (the new user or None if the address is taken, the signup's
    verification flow token, what ``sign_in`` returned).

    ``sign_in`` starts the new user's session in the same transaction (first-party
    tokens for ``/v1/signup``, a browser session for the hosted registration page);
    it is not called when the app requires a verified email first. A taken address
    runs the same statements and, with verification required, mails its owner a
    notice instead, so the caller can answer the same either way (P4). ``invitation``:
    the open invitation the sign-up comes from (an invitation-only app lets its
    invitee register).
    """
    if invitation is None:
        ensure_self_signup(app)  # before the address is even parsed
    policy = policy_of(app)
    try:
        email_n = normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(str(exc), extra={"field": "email"}) from None
    if invitation is not None:
        ensure_self_signup(app, invitation=invitation, email_normalized=email_n)
    _check_new_password(password, email_n, app)
    try:
        password_hash = await services.hasher.hash(password)
    except HasherBusy:
        raise busy() from None
    signed_in: T | None = None
    async with services.router.enter(app) as conn:
        user = await users_repo.create(
            conn, email=email, email_normalized=email_n, password_hash=password_hash
        )
        if user is None:
            await audit.record(
                conn,
                "user.signup",
                "failure",
                meta,
                target_type="account",
                details={"reason": "email_taken"},
            )
            flow_token = one_time.new_secret()  # matches nothing: same answer shape
            if policy.require_verified_email:
                # Tell the owner (through the outbox, like the new user's mail).
                flow_token = await verification.queue_signup_notice(
                    conn, services, app, email_n, meta
                )
        else:
            await audit.record(
                conn,
                "user.signup",
                "success",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="user",
                target_id=user.sub,
            )
            await webhooks.emit(
                conn,
                app,
                "user.created",
                {"user_id": user.sub, "email": user.email, "via": "signup"},
            )
            session_id = None
            if sign_in is not None and not policy.require_verified_email:
                signed_in, session_id = await sign_in(conn, user)
            # The verification token remembers this password and session: a proof
            # with this signup's flow token keeps them (P7).
            flow_token = await verification.queue_for_new_user(
                conn, services, app, user, meta, session_id=session_id
            )
    return user, flow_token, signed_in


async def signup(
    services: Services, app: AppRecord, email: str, password: str, meta: audit.RequestMeta
) -> tuple[int, dict[str, Any]]:
    """``POST /v1/signup``: the account, and the first-party session unless the app
    requires a verified email first (then the same 202 for every address) or a second
    factor (then 403 ``mfa_enrollment_required`` with the enrolment flow's token)."""
    from oneauth.flows import signup as signup_flow  # it imports the engine

    async def sign_in(
        conn: asyncpg.Connection, user: users_repo.User
    ) -> tuple[signup_flow.Started, uuid.UUID | None]:
        started = await signup_flow.api_session(services, app, conn, user, meta)
        return started, started.session_id

    user, flow_token, started = await register(services, app, email, password, meta, sign_in)
    if policy_of(app).require_verified_email:
        # Same answer whether or not the address was already registered.
        return 202, {
            "user": {"email": email.strip()},
            "verification_required": True,
            "flow_token": flow_token,
        }
    if user is None or started is None:
        raise EmailTaken("an account with this email exists; sign in or reset the password")
    if started.pending is not None:
        # After the commit: the account and its enrolment flow stay.
        raise started.pending.error(user=user.public(), verification_flow_token=flow_token)
    assert started.tokens is not None
    return 201, {"user": user.public(), **started.tokens, "flow_token": flow_token}


SuccessHook = Callable[[asyncpg.Connection, users_repo.User], Awaitable[T]]


async def verify_password(
    services: Services,
    app: AppRecord,
    email: str,
    password: str,
    meta: audit.RequestMeta,
    on_success: SuccessHook[T],
) -> T:
    """The password check every sign-in shares (the JSON API and the hosted login page).

    Reserves the attempt on the account, IP and pair throttles before any argon2
    work (P3, P8), costs a dummy hash for unknown accounts (P4), rehashes when
    parameters changed (P1) and audits failures (A1). On success
    ``on_success(conn, user)`` runs in the transaction that releases the
    reservation; it starts whatever session the caller needs and audits it.

    Raises TooManyRequests, InvalidCredentials, EmailNotVerified or
    ServiceUnavailable (hasher busy); the failure rows commit first.
    """
    policy = policy_of(app)
    try:
        email_n: str | None = normalize_email(email)
    except InvalidEmail:
        email_n = None  # treated exactly like an unknown account
    names = throttle.Names(services.settings.master_key, app.app_id)
    keys = throttle.ThrottleKeys.for_login(names, email_n or email.strip().lower(), meta.ip_hash)
    async with services.router.enter(app) as conn:
        reservation = await throttle.reserve(conn, keys)
        allowed = reservation.allowed
        user = await users_repo.by_email(conn, email_n) if allowed and email_n else None
        if not allowed:
            await audit.record(
                conn,
                "auth.login",
                "denied",
                meta,
                target_type="account",
                target_id=keys.account,
                details={"reason": "throttled"},
            )
    if not allowed:
        metrics.LOGIN_THROTTLED.inc()
        raise TooManyRequests(
            "too many failed attempts; wait before trying again",
            headers={"retry-after": str(reservation.retry_after)},
        )
    # The reservation has committed: argon2 runs with no connection held (P8).
    ok, new_hash = False, None
    try:
        if user is not None and user.password_hash and user.status == "active":
            result = await services.hasher.verify_and_rehash(user.password_hash, password)
            ok, new_hash = result.ok, result.new_hash
        else:
            await services.hasher.verify_dummy(password)
    except HasherBusy:
        await settle_attempt(services, app, reservation, verified=False)
        raise busy() from None
    unverified = (
        ok and user is not None and policy.require_verified_email and not user.email_verified
    )
    done = False
    outcome: T | None = None
    async with services.router.enter(app) as conn:
        if ok and user is not None:
            # Cleared (first proof of the mailbox, P7) or changed while it was
            # being verified: too late. Locks the row until this sign-in commits
            # (and, for a sign-in that goes on, stamps last_login_at in that statement).
            if unverified:
                ok = await users_repo.password_still(conn, user.id, user.password_hash)
            else:
                ok = await users_repo.still_then_touch(conn, user.id, user.password_hash)
        if not ok or user is None:
            # The reservation already counted this failure (and any lock it earned).
            await audit.record(
                conn,
                "auth.login",
                "failure",
                meta,
                target_type="user" if user else "account",
                target_id=user.sub if user else keys.account,
                details={"reason": "invalid_credentials", "method": "password"},
            )
        else:
            await throttle.succeeded(conn, reservation)
            if new_hash is not None:
                await users_repo.set_password(conn, user.id, new_hash, changed=False)
            if unverified:
                await audit.record(
                    conn,
                    "auth.login",
                    "denied",
                    meta,
                    actor_type="user",
                    actor_id=user.sub,
                    target_type="user",
                    target_id=user.sub,
                    details={"reason": "email_not_verified"},
                )
            else:
                outcome = await on_success(conn, user)
                done = True
    if unverified:
        metrics.LOGIN_FAILURE.inc()
        raise EmailNotVerified("confirm your email address, then sign in")
    if not done:
        metrics.LOGIN_FAILURE.inc()
        raise InvalidCredentials("the email or password is not right")
    metrics.LOGIN_SUCCESS.inc()
    return cast(T, outcome)


async def login(
    services: Services, app: AppRecord, email: str, password: str, meta: audit.RequestMeta
) -> dict[str, Any]:
    """``POST /v1/login``: the first-party client's tokens, through the flow engine
    (403 ``mfa_required`` when a second factor is needed)."""
    from oneauth.flows import login  # the engine's strategies import this module

    payload = {"email": email, "password": password}
    return await login.sign_in(services, app, "password", payload, meta, method="password")


async def change_password(
    services: Services,
    app: AppRecord,
    claims: AccessTokenClaims,
    current: str,
    new: str,
    meta: audit.RequestMeta,
) -> None:
    """Re-authenticate with the current password, set the new one, end other sessions."""
    sid = session_id_of(claims)
    names = throttle.Names(services.settings.master_key, app.app_id)
    async with services.router.enter(app) as conn:
        user = await users_repo.by_id(conn, claims.sub)
        keys = throttle.ThrottleKeys.for_login(
            names, users_repo.stored_email_key(user.email) if user else claims.sub, meta.ip_hash
        )
        reservation = await throttle.reserve(conn, keys)  # the login's counters (P8)
    if not reservation.allowed:
        raise TooManyRequests(
            "too many failed attempts; wait before trying again",
            headers={"retry-after": str(reservation.retry_after)},
        )
    if user is None or user.status != "active" or not user.password_hash:
        raise InvalidCredentials("the current password is not right")
    try:
        ok = await services.hasher.verify(user.password_hash, current)
    except HasherBusy:
        await settle_attempt(services, app, reservation, verified=False)
        raise busy() from None
    try:
        if ok:
            _check_new_password(new, user.email, app)
            new_hash = await services.hasher.hash(new)
    except (WeakPasswordError, HasherBusy) as exc:
        await settle_attempt(services, app, reservation, verified=True)
        if isinstance(exc, HasherBusy):
            raise busy() from None
        raise
    async with services.router.enter(app) as conn:
        if ok:
            # Not if the password was cleared (P7) or changed meanwhile.
            ok = await users_repo.password_still(conn, user.id, user.password_hash)
        if not ok:  # the reservation counted the failure
            await audit.record(
                conn,
                "user.password_change",
                "failure",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="user",
                target_id=user.sub,
                details={"reason": "invalid_credentials"},
            )
        else:
            await throttle.succeeded(conn, reservation)
            await users_repo.set_password(conn, user.id, new_hash)
            await webhooks.emit(
                conn, app, "user.password_changed", {"user_id": user.sub, "via": "change"}
            )
            ended = await sessions.revoke_user_sessions(
                conn, user.id, reason="password_change", except_session=sid
            )
            await audit.record(
                conn,
                "user.password_change",
                "success",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="user",
                target_id=user.sub,
                details={"sessions_ended": ended},
            )
    if not ok:
        raise InvalidCredentials("the current password is not right")


async def logout(
    services: Services, app: AppRecord, claims: AccessTokenClaims, meta: audit.RequestMeta
) -> None:
    sid = session_id_of(claims)
    async with services.router.enter(app) as conn:
        ended = await sessions.revoke_session(conn, sid, reason="logout")
        await audit.record(
            conn,
            "auth.logout",
            "success",
            meta,
            actor_type="user",
            actor_id=claims.sub,
            target_type="session",
            target_id=str(sid),
            details={"was_active": ended},
        )
