"""Sign-up as a flow of the engine (issue 12): the new user's first session.

The password set at sign-up is the flow's first factor. The policy then decides
as for any sign-in: with ``mfa: required`` nobody gets a session without a second
factor, so a new account gets the enrolment flow (403 ``mfa_enrollment_required``
on the API) instead of tokens. Creating the account itself is
:func:`oneauth.flows.password.register`, shared by ``POST /v1/signup`` and the hosted
registration page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ValidationFailed
from oneauth.flows import engine
from oneauth.flows.common import first_party_session
from oneauth.identity.users import User
from oneauth.services import Services

__all__ = ["Started", "api_session"]


@dataclass(frozen=True, slots=True)
class Started:
    """The sign-up's outcome: first-party tokens (and their session), or the flow that
    must continue (enrolment) before any session exists."""

    tokens: dict[str, Any] | None = None
    session_id: uuid.UUID | None = None
    pending: engine.Pending | None = None


async def api_session(
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    user: User,
    meta: audit.RequestMeta,
) -> Started:
    """The new user's first-party session, if the policy allows one yet."""
    client = await services.clients.default_client(conn, app.app_id)
    if client is None:
        raise ValidationFailed("this app has no first-party client; create one with the CLI")
    flow = engine.transient(
        kind="signup",
        binding=engine.api_binding(client.client_id),
        serves={"client_id": client.client_id},
    )
    flow = await engine.satisfy(conn, flow, "password", ["pwd"], user.id)
    # A user created in this transaction has no factor yet.
    decision = engine.decide(policy_of(app), flow, ())
    if isinstance(decision, engine.Done):
        # As engine.complete would, but keeping the session: the signup's verification
        # token remembers it (P7).
        tokens, session = await first_party_session(
            services, app, conn, user, amr=flow.amr, method="signup", meta=meta
        )
        return Started(tokens=tokens, session_id=session.id)
    outcome = await engine.complete(services, app, conn, flow, meta=meta, method="signup")
    assert isinstance(outcome, engine.Pending)
    return Started(pending=outcome)
