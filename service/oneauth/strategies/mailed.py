"""Passwordless sign-in by a secret mailed to the user: a 6-digit code (strategy
``email_code``, amr ``otp``) or a link (``magic_link``, amr ``email``, as before).

Both are the same proof: the secret works only together with the flow token its
request handed out (P5: a forwarded or intercepted link or code signs nobody in),
and the checks live in :func:`oneauth.flows.passwordless.complete_with`. They
differ in the payload member that carries the secret, so one class serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.errors import InvalidLinkOrCode
from oneauth.flows import passwordless
from oneauth.flows.engine import Flow
from oneauth.services import Services
from oneauth.strategies.base import Payload, StrategyKind, Then

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class MailedSecretStrategy:
    name: str
    amr: tuple[str, ...]
    member: Literal["code", "token"]  # where the payload carries the secret
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
        """``payload``: ``flow_token`` (of /v1/passwordless/start) and the secret."""
        flow_token, secret = payload.get("flow_token"), payload.get(self.member)
        if not isinstance(flow_token, str) or not isinstance(secret, str):
            raise InvalidLinkOrCode()
        return await passwordless.complete_with(
            services,
            app,
            meta,
            then,
            flow_token=flow_token,
            code=secret if self.member == "code" else None,
            token=secret if self.member == "token" else None,
        )


EMAIL_CODE = MailedSecretStrategy("email_code", ("otp",), "code")
MAGIC_LINK = MailedSecretStrategy("magic_link", ("email",), "token")
