"""What a strategy is: one way of proving one factor (issue 12).

A strategy verifies its factor and, in the transaction that consumed it (a
password throttle release, a TOTP step, a recovery code, a one-time link),
calls ``then(conn, user, amr)``: the engine's ``satisfy`` and ``complete``
run there, so the factor's use and the session it grants commit together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol, TypeVar

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.flows.engine import Flow
from oneauth.identity.users import User
from oneauth.services import Services

T = TypeVar("T")
StrategyKind = Literal["first", "second", "both"]
# Runs in the verifying transaction with the user and the amr values the
# factor earned; its result is what ``verify`` returns.
Then = Callable[[asyncpg.Connection, User, list[str]], Awaitable[T]]
Payload = Mapping[str, Any]


class Strategy(Protocol):
    """``name``: the factor's name in the API (``factor`` of /v1/login/mfa) and in
    a flow's ``satisfied``. ``amr``: its RFC 8176 values. ``kind``: a first
    factor (identifies the user), a second one (proves more about the flow's
    user), or both (passkeys)."""

    @property
    def name(self) -> str: ...

    @property
    def amr(self) -> tuple[str, ...]: ...

    @property
    def kind(self) -> StrategyKind: ...

    async def verify(
        self,
        services: Services,
        app: AppRecord,
        flow: Flow,
        payload: Payload,
        meta: audit.RequestMeta,
        then: Then[T],
    ) -> T:
        """Verify the factor for ``flow`` (a second factor: for ``flow.user_id``) and
        run ``then`` in the transaction that consumed it. Raises the API's 4xx
        errors (InvalidCredentials, InvalidLinkOrCode, TooManyRequests, ...);
        failures are audited and committed before the raise."""
        ...
