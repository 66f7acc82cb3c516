"""The password factor (``pwd``): the check of :func:`oneauth.flows.password.verify_password`.

Kept from before the engine (P3, P4, P8): the attempt is reserved on the
account, IP and pair throttles before any argon2 work, an unknown account
costs a dummy verify, and each attempt runs exactly one argon2 verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidCredentials
from oneauth.flows.engine import Flow
from oneauth.flows.password import MAX_PASSWORD_INPUT, verify_password
from oneauth.identity.users import User
from oneauth.services import Services
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PasswordStrategy:
    name: str = "password"
    amr: tuple[str, ...] = ("pwd",)
    kind: StrategyKind = "first"

    async def verify(
        self,
        services: Services,
        app: AppRecord,
        flow: Flow,
        payload: Payload,
        meta: audit.RequestMeta,
        then: Then[T],
    ) -> T:
        """``payload``: ``email`` and ``password`` (already bounded by the caller's model)."""
        email, secret = payload.get("email"), payload.get("password")
        if not isinstance(email, str) or not isinstance(secret, str):
            raise InvalidCredentials()
        if len(secret) > MAX_PASSWORD_INPUT:
            raise InvalidCredentials()  # before hashing: a cost bound
        amr = list(self.amr)

        async def on_success(conn: asyncpg.Connection, user: User) -> T:
            return await then(conn, user, amr)

        return await verify_password(services, app, email, secret, meta, on_success)


STRATEGY = PasswordStrategy()
