"""Passwordless sign-in by a 6-digit code mailed to the user (amr ``otp``).

The code works only together with the flow token its request handed out (P5);
the checks live in :func:`oneauth.flows.passwordless.complete_with`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidLinkOrCode
from oneauth.flows import passwordless
from oneauth.flows.engine import Flow
from oneauth.services import Services
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EmailCodeStrategy:
    name: str = "email_code"
    amr: tuple[str, ...] = ("otp",)
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
        """``payload``: ``flow_token`` (of /v1/passwordless/start) and ``code``."""
        flow_token, code = payload.get("flow_token"), payload.get("code")
        if not isinstance(flow_token, str) or not isinstance(code, str):
            raise InvalidLinkOrCode()
        return await passwordless.complete_with(
            services, app, meta, then, flow_token=flow_token, code=code
        )


STRATEGY = EmailCodeStrategy()
