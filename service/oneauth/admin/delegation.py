"""Console-delegated admin tokens (issue 15): the console acting for an operator.

The console signs operators in at the reserved platform app; to administer app
A for one of them it mints an access token FROM APP A'S OWN ISSUER (so it is
verified like any token of A, and useless at every other app, B1):

- ``sub`` = ``client_id`` = ``oneauth-console`` (reserved: client ids are
  ``cl_...``, users' subs are UUIDs, so it collides with neither);
- ``grant`` = ``console_delegation`` (not ``client_credentials``: it acts for
  a person, not for a client of A);
- ``scope`` = the app admin scopes the operator's grant allows for A;
- ``act`` = ``{"sub": <operator sub>, "iss": <platform issuer>, "email"}``
  (RFC 8693 section 4.1: who is acting);
- 5 minutes (``TOKEN_TTL``).

The guard accepts such a token only while the operator's grant row
(``oneauth.console_grants``, created by the platform's control template
0004_platform.sql) still exists for A or for all apps, and only for the scopes
that grant's role allows NOW (:func:`operator_role`): a revoked or narrowed
grant stops at once, not when the token expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps.models import AppRecord
from oneauth.services import Services

__all__ = [
    "CONSOLE_CLIENT_ID",
    "DELEGATION_GRANT",
    "PLATFORM_APP_ID",
    "TOKEN_TTL",
    "Delegated",
    "mint",
    "operator_role",
]

CONSOLE_CLIENT_ID = "oneauth-console"
DELEGATION_GRANT = "console_delegation"
PLATFORM_APP_ID = "platform"
TOKEN_TTL = 300

# The strongest role wins when an operator has both an all-apps and a per-app grant.
_RANK = {"viewer": 1, "admin": 2}
# Schema-qualified: read through the control pool (the service role), never from
# inside an app's transaction, whose role cannot see the control schema.
_GRANTS_SQL = (
    "SELECT role FROM oneauth.console_grants"
    " WHERE operator_sub = $1 AND (app_id = $2 OR app_id IS NULL)"
)


@dataclass(frozen=True, slots=True)
class Delegated:
    access_token: str
    expires_in: int
    scope: str
    jti: str


class DelegationError(ValueError):
    """A mint request the console should never make (a programming error)."""


async def mint(
    services: Services,
    app: AppRecord,
    operator_sub: str,
    operator_email: str | None,
    scopes: Iterable[str],
) -> Delegated:
    """An app-``app`` admin token for the console acting for ``operator_sub``.

    The console passes the scopes the operator's grant allows for ``app``
    (:func:`oneauth.admin.scopes.scopes_for_role`); the guard re-checks the grant
    on every call, so minting itself decides nothing. Never for the platform app
    itself: operators are administered with ``oneauth platform operators``."""
    try:
        sub = str(uuid.UUID(operator_sub))
    except ValueError:
        raise DelegationError("operator_sub must be the operator's UUID") from None
    wanted = sorted(set(scopes))
    if not wanted or not set(wanted) <= APP_ADMIN_SCOPES:
        raise DelegationError("scopes must be a non-empty subset of the app admin scopes")
    if app.app_id == PLATFORM_APP_ID:
        raise DelegationError("the console does not mint tokens of the platform app")
    act: dict[str, str] = {"sub": sub, "iss": services.settings.issuer_for(PLATFORM_APP_ID)}
    if operator_email:
        act["email"] = operator_email
    scope = " ".join(wanted)
    async with services.router.enter(app) as conn:
        issuer = await services.issuer(app, conn)
    token, claims = issuer.access_token(
        sub=CONSOLE_CLIENT_ID,
        client_id=CONSOLE_CLIENT_ID,
        scope=scope,
        ttl=TOKEN_TTL,
        grant=DELEGATION_GRANT,
        authz={"act": act},
    )
    return Delegated(access_token=token, expires_in=TOKEN_TTL, scope=scope, jti=claims["jti"])


async def operator_role(pool: asyncpg.Pool, operator_sub: str, app_id: str) -> str | None:
    """The operator's console role for ``app_id`` (its own grant or an all-apps
    one; the stronger wins), None when there is none.

    Fails closed while the grant table does not exist (before the platform's
    control template is applied): no grant, no delegated access."""
    try:
        sub = uuid.UUID(operator_sub)
    except ValueError:
        return None
    try:
        rows = await pool.fetch(_GRANTS_SQL, sub, app_id)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return None
    roles = [r["role"] for r in rows if r["role"] in _RANK]
    return max(roles, key=_RANK.__getitem__) if roles else None
