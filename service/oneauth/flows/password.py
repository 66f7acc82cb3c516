"""Password sign-up, login, change and logout for the first-party API.

No enumeration (P4): an unknown email costs a dummy argon2 verify and gets the
same status, body and audit shape as a wrong password. Hashing runs on the
hasher's thread pool with no database connection held.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import asyncpg

from oneauth import audit, metrics
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    TooManyRequests,
    ValidationFailed,
    WeakPasswordError,
)
from oneauth.flows import verification
from oneauth.flows.common import (
    busy,
    first_party_session,
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


async def signup(
    services: Services, app: AppRecord, email: str, password: str, meta: audit.RequestMeta
) -> tuple[int, dict[str, Any]]:
    policy = policy_of(app)
    try:
        email_n = normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(str(exc), extra={"field": "email"}) from None
    _check_new_password(password, email_n, app)
    try:
        password_hash = await services.hasher.hash(password)
    except HasherBusy:
        raise busy() from None
    tokens: dict[str, Any] | None = None
    pending: Any = None
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
            session_id = None
            if not policy.require_verified_email:
                # Through the flow engine: with mfa=required the new user enrols a
                # factor before any token (403 mfa_enrollment_required).
                outcome = await _signup_session(services, app, conn, user, meta)
                if outcome.tokens is None:
                    pending = outcome.pending
                else:
                    tokens, session_id = outcome.tokens, outcome.session_id
            # The verification token remembers this password and session: a proof
            # with this signup's flow token keeps them (P7).
            flow_token = await verification.queue_for_new_user(
                conn, services, app, user, meta, session_id=session_id
            )
    if policy.require_verified_email:
        # Same answer whether or not the address was already registered.
        return 202, {
            "user": {"email": email.strip()},
            "verification_required": True,
            "flow_token": flow_token,
        }
    if pending is not None and user is not None:
        raise pending.error(user=user.public(), verification_flow_token=flow_token)
    if user is None or tokens is None:
        raise EmailTaken("an account with this email exists; sign in or reset the password")
    return 201, {"user": user.public(), **tokens, "flow_token": flow_token}


@dataclass(frozen=True, slots=True)
class _SignupSession:
    tokens: dict[str, Any] | None = None
    session_id: uuid.UUID | None = None
    pending: Any = None  # engine.Pending


async def _signup_session(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: users_repo.User,
    meta: audit.RequestMeta,
) -> _SignupSession:
    from oneauth.flows import engine, login  # the engine's strategies import this module

    binding = await login.api_binding(services, app, conn)
    flow = engine.transient(
        kind="signup", binding=binding, serves={"client_id": binding.removeprefix("api:")}
    )
    flow = await engine.satisfy(conn, flow, "password", ["pwd"], user.id)
    decision = engine.decide(policy_of(app), flow, ())
    if not isinstance(decision, engine.Done):
        outcome = await engine.complete(services, app, conn, flow, meta=meta, method="signup")
        assert isinstance(outcome, engine.Pending)
        return _SignupSession(pending=outcome)
    tokens, session = await first_party_session(
        services, app, conn, user, amr=["pwd"], method="signup", meta=meta
    )
    return _SignupSession(tokens, session.id)


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
            # being verified: too late. Locks the row until this sign-in commits.
            ok = await users_repo.password_still(conn, user.id, user.password_hash)
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
                await users_repo.touch_login(conn, user.id)
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
