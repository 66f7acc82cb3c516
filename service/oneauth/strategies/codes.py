"""The checking skeleton of the second factors typed as a code (TOTP, recovery code).

Both reserve the user's second-factor attempt before looking at the code
(throttle.reserve_second_factor locks the counter row, so one user's attempts,
and a double submit of one code, are checked one at a time), spend the code in
the same transaction as the session it grants, count a wrong code against the
flow (it dies after engine.FLOW_ATTEMPTS) and audit every refusal. Only how a
code is spent, and what follows a success, differ.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidCode, TooManyRequests
from oneauth.flows import engine
from oneauth.identity import throttle
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.services import Services
from oneauth.strategies.base import Then

T = TypeVar("T")
R = TypeVar("R")


async def check(
    services: Services,
    app: AppRecord,
    flow: engine.Flow,
    meta: audit.RequestMeta,
    then: Then[T],
    *,
    factor: str,
    amr: tuple[str, ...],
    spend: Callable[[asyncpg.Connection, uuid.UUID], Awaitable[R | None]],
    after: Callable[[asyncpg.Connection, User, R], Awaitable[None]] | None = None,
    wrong: str,
) -> T:
    """``spend(conn, user_id)`` spends the code and returns what it learned, or None
    when the code is wrong or used; ``after(conn, user, learned)`` runs after the
    session in the same transaction (audit, notice mail)."""
    user_id = flow.user_id
    assert user_id is not None
    names = throttle.Names(services.settings.master_key, app.app_id)
    done: tuple[T] | None = None
    refused: throttle.FactorReservation | None = None
    async with services.router.enter(app) as conn:
        reservation = await throttle.reserve_second_factor(conn, names, str(user_id))
        if not reservation.allowed:
            refused = reservation
        else:
            learned = await spend(conn, user_id)
            user = await users_repo.by_id(conn, user_id) if learned is not None else None
            if learned is not None and user is not None:
                await throttle.second_factor_succeeded(conn, reservation)
                done = (await then(conn, user, list(amr)),)
                if after is not None:
                    await after(conn, user, learned)
            else:
                await engine.count_attempt(conn, flow)
        if done is None:
            await audit.record(
                conn,
                "auth.mfa",
                "denied" if refused else "failure",
                meta,
                target_type="user",
                target_id=str(user_id),
                details={"factor": factor, "reason": "throttled" if refused else "invalid_code"},
            )
    if refused is not None:
        raise TooManyRequests(
            "too many wrong codes; wait before trying again",
            headers={"retry-after": str(refused.retry_after)},
        )
    if done is None:
        raise InvalidCode(wrong)
    return done[0]
