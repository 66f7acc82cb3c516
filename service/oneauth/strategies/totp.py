"""TOTP (RFC 6238) as a second factor, amr ``otp``.

* Seeds: 160 random bits (RFC 4226 section 4 recommends 160), sealed with the
  secret box (A2); the associated data names the app, the user and the factor,
  so a sealed seed copied to another row, user or app does not open.
* A code is accepted for the current time step or one step either side (RFC
  6238 section 5.2 drift), and only for a step later than the last one accepted
  (one guarded UPDATE, :func:`oneauth.identity.factors.use_totp_step`): no code
  works twice, not even in two concurrent requests.
* Attempts count on the user's second-factor throttle and on the flow (which
  dies after ``FLOW_ATTEMPTS`` wrong codes).
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
import pyotp

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.flows import engine
from oneauth.identity import factors
from oneauth.identity.factors import Factor
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.services import Services
from oneauth.strategies import codes
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")
DIGITS = 6
PERIOD = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32(32)  # 32 base32 characters: 160 bits


def seal_context(app_id: str, user_id: uuid.UUID, factor_id: uuid.UUID) -> str:
    return f"app:{app_id}/totp/{user_id}/{factor_id}"


def seal(box: SecretBox, app_id: str, user_id: uuid.UUID, factor_id: uuid.UUID, secret: str) -> str:
    return box.seal(secret.encode(), context=seal_context(app_id, user_id, factor_id))


def open_secret(box: SecretBox, app_id: str, factor: Factor) -> str | None:
    if factor.secret_sealed is None:
        return None
    try:
        context = seal_context(app_id, factor.user_id, factor.id)
        return box.open(factor.secret_sealed, context=context).decode()
    except (SecretBoxError, UnicodeDecodeError):
        return None  # not this row's seed: it proves nothing


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// URI authenticator apps read (issuer: the app's display name)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def clean(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    digits = code.replace(" ", "").replace("-", "")
    return digits if len(digits) == DIGITS and digits.isascii() and digits.isdigit() else None


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step (within the drift) whose code is ``code``, else None."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = totp.timecode(_utc(now))
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every candidate is compared (constant work whichever matches).
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _utc(now: float | None) -> datetime:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC)


async def check_code(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    factor: Factor,
    code: str,
    *,
    confirm: bool = False,
) -> bool:
    """Is ``code`` right for ``factor`` now, and unused? If so, its step is spent."""
    secret = open_secret(box, app_id, factor)
    step = None if secret is None else matching_step(secret, code)
    if step is None:
        return False
    return await factors.use_totp_step(conn, factor.id, step, confirm=confirm)


@dataclass(frozen=True, slots=True)
class TotpStrategy:
    name: str = "totp"
    amr: tuple[str, ...] = ("otp",)
    kind: StrategyKind = "second"

    async def verify(
        self,
        services: Services,
        app: AppRecord,
        flow: engine.Flow,
        payload: Payload,
        meta: audit.RequestMeta,
        then: Then[T],
    ) -> T:
        """``payload``: ``code`` (6 digits) for any confirmed TOTP factor of the flow's user."""
        code = clean(payload.get("code"))

        async def spend(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool | None:
            if code is None:
                return None
            for factor in await factors.of_user(conn, user_id, kind="totp"):
                if factor.confirmed and await check_code(
                    conn, services.box, app.app_id, factor, code
                ):
                    return True
            return None

        return await codes.check(
            services,
            app,
            flow,
            meta,
            then,
            factor=self.name,
            amr=self.amr,
            spend=spend,
            wrong="the code is not right, was already used, or expired",
        )


STRATEGY = TotpStrategy()
