"""Recovery codes as a second factor (amr ``otp``; the flow records the factor name).

Ten codes per set, each 12 characters of Crockford base32 (60 random bits),
shown once when the set is made and stored only as keyed hashes
(HMAC-SHA-256 under a key derived from the master key, the app and the user
inside the MAC). A fast keyed hash is enough here, unlike for passwords:
a code is 60 bits of randomness, not a human choice, so even a stolen
table with its key costs about 2^59 hashes per code to invert, and online
guessing is throttled like TOTP. argon2 would only make every use slow.

A code works once (one guarded UPDATE: of two concurrent uses, one wins);
every use is audited and mails the user, with the number of codes left.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.flows import engine
from oneauth.flows.mailing import Mailer
from oneauth.identity import factors
from oneauth.identity.users import User
from oneauth.mail import outbox
from oneauth.services import Services
from oneauth.strategies import codes
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")
COUNT = 10
LENGTH = 12
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_READ_AS = str.maketrans({"i": "1", "l": "1", "o": "0", "u": "v"})


@cache
def _key(master_key: str) -> bytes:
    return hashlib.sha256(b"oneauth/recovery-codes|" + master_key.encode()).digest()


def new_codes() -> list[str]:
    """Ten fresh codes, formatted ``xxxx-xxxx-xxxx`` for reading aloud or typing."""
    out = []
    for _ in range(COUNT):
        raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        out.append(f"{raw[:4]}-{raw[4:8]}-{raw[8:]}")
    return out


def normalize(code: object) -> str | None:
    if not isinstance(code, str) or len(code) > 40:
        return None
    cleaned = code.strip().lower().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(cleaned) != LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def code_hash(master_key: str, app_id: str, user_id: uuid.UUID, code: str) -> bytes:
    """The stored form of a (normalized) code."""
    msg = f"{app_id}|{user_id}|{code}".encode()
    return hmac.new(_key(master_key), msg, hashlib.sha256).digest()


def hashes_of(master_key: str, app_id: str, user_id: uuid.UUID, codes: list[str]) -> list[bytes]:
    out = []
    for code in codes:
        cleaned = normalize(code)
        assert cleaned is not None
        out.append(code_hash(master_key, app_id, user_id, cleaned))
    return out


@dataclass(frozen=True, slots=True)
class RecoveryCodeStrategy:
    name: str = "recovery_code"
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
        """``payload``: ``code``, one unused recovery code of the flow's user."""
        code = normalize(payload.get("code"))
        key = services.settings.master_key

        async def spend(conn: asyncpg.Connection, user_id: uuid.UUID) -> int | None:
            if code is None:
                return None
            digest = code_hash(key, app.app_id, user_id, code)
            return await factors.use_recovery_code(conn, user_id, digest)  # codes left

        async def after(conn: asyncpg.Connection, user: User, left: int) -> None:
            await audit.record(
                conn,
                "mfa.recovery_code_used",
                "success",
                meta,
                actor_type="user",
                actor_id=user.sub,
                target_type="user",
                target_id=user.sub,
                details={"codes_left": left},
            )
            notice = Mailer(services, app).draft(
                "mfa_recovery_code_used", user.email, context={"codes_left": left}
            )
            await outbox.queue(conn, app.app_id, user.email, notice)

        return await codes.check(
            services,
            app,
            flow,
            meta,
            then,
            factor=self.name,
            amr=self.amr,
            spend=spend,
            after=after,
            wrong="the recovery code is not right or was already used",
        )


STRATEGY = RecoveryCodeStrategy()
