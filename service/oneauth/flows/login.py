"""First-party API sign-in through the flow engine: ``POST /v1/login``, passwordless
completion and ``POST /v1/login/mfa`` (issue 12).

A first factor starts a transient flow bound to the app's first-party client;
when the policy needs no more, the tokens come back as before. Otherwise the
flow is stored and the caller gets 403 ``mfa_required`` (or
``mfa_enrollment_required``) with its ``flow_token``, and continues at
``/v1/login/mfa`` (or the enrolment calls).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import asyncpg
from starlette.requests import Request

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ValidationFailed
from oneauth.flows import engine
from oneauth.identity.users import User
from oneauth.services import Services
from oneauth.strategies import Payload, get

LOGIN: tuple[engine.Kind, ...] = ("login",)


async def api_binding(services: Services, app: AppRecord, conn: asyncpg.Connection) -> str:
    client = await services.clients.default_client(conn, app.app_id)
    if client is None:
        raise ValidationFailed("this app has no first-party client; create one with the CLI")
    return engine.api_binding(client.client_id)


def _tokens(outcome: engine.Issued | engine.Pending) -> dict[str, Any]:
    if isinstance(outcome, engine.Pending):
        raise outcome.error()  # after the commit: the stored flow stays
    assert outcome.tokens is not None
    return outcome.tokens


async def sign_in(
    services: Services,
    app: AppRecord,
    factor: str,
    payload: Payload,
    meta: audit.RequestMeta,
    *,
    method: str,
) -> dict[str, Any]:
    """A first factor (password, email code, magic link, passkey): tokens, or 403
    ``mfa_required`` / ``mfa_enrollment_required`` with a flow token."""
    strategy = get(factor)
    start = engine.transient(kind="login", binding="api:")

    async def then(
        conn: asyncpg.Connection, user: User, amr: list[str]
    ) -> engine.Issued | engine.Pending:
        flow = replace(start, binding=await api_binding(services, app, conn))
        flow = replace(flow, serves={"client_id": flow.binding.removeprefix("api:")})
        flow = await engine.satisfy(conn, flow, strategy.name, amr, user.id)
        return await engine.complete(services, app, conn, flow, meta=meta, method=method, user=user)

    return _tokens(await strategy.verify(services, app, start, payload, meta, then))


async def second_factor(
    services: Services,
    app: AppRecord,
    flow_token: str,
    factor: str,
    payload: Payload,
    meta: audit.RequestMeta,
) -> dict[str, Any]:
    """``POST /v1/login/mfa``: verify a second factor for the flow, then its tokens."""
    return _tokens(await continue_flow(services, app, flow_token, factor, payload, meta))


async def continue_flow(
    services: Services,
    app: AppRecord,
    flow_token: str,
    factor: str,
    payload: Payload,
    meta: audit.RequestMeta,
    *,
    binding: str | None = None,
    browser: Request | None = None,
) -> engine.Issued | engine.Pending:
    """A second factor for a stored login flow: the API's (default) or, with
    ``binding`` and ``browser``, a hosted page's (a browser session)."""
    strategy = get(factor, second=True)
    async with services.router.enter(app) as conn:
        bound = binding or await api_binding(services, app, conn)
        flow = await engine.load(conn, flow_token, binding=bound, kinds=LOGIN)
    if factor not in policy_of(app).mfa_factors:
        raise ValidationFailed(f"this app does not accept {factor}", extra={"field": "factor"})
    first = "+".join(sorted(flow.factors))

    async def then(
        conn: asyncpg.Connection, user: User, amr: list[str]
    ) -> engine.Issued | engine.Pending:
        # Locked again in the factor's own transaction: a flow completes once.
        current = await engine.load(conn, flow_token, binding=bound, kinds=LOGIN)
        current = await engine.satisfy(conn, current, strategy.name, amr, user.id)
        return await engine.complete(
            services,
            app,
            conn,
            current,
            meta=meta,
            method=f"{first}+{strategy.name}",
            flow_token=flow_token,
            browser=browser,
            user=user,
        )

    return await strategy.verify(services, app, flow, payload, meta, then)
