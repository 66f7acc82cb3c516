"""B4: console-delegated admin tokens (oneauth.admin.delegation): minted from the
app's own issuer, honoured only while the operator's grant allows them."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import httpx
import pytest
from psycopg import sql

from admin._support import bearer
from oneauth.admin import delegation
from oneauth.admin.scopes import APP_ADMIN_SCOPES, READ_SCOPES
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.verifier import VerificationError

OPERATOR = str(uuid.uuid4())


async def test_mint_issues_a_short_token_of_the_apps_own_issuer(
    provision: Callable[..., AppRecord], services: Services
) -> None:
    a, b = provision(), provision()
    minted = await delegation.mint(
        services, a, OPERATOR, "op@example.com", ["admin:users:read", "admin:audit:read"]
    )
    assert minted.expires_in == delegation.TOKEN_TTL == 300
    async with services.router.enter(a) as conn:
        claims = (await services.keys.get(a, conn)).verifier.verify(minted.access_token)
    assert claims.iss == services.settings.issuer_for(a.app_id)
    assert claims.app_id == a.app_id
    assert claims.sub == claims.client_id == "oneauth-console"
    assert claims.scopes == {"admin:users:read", "admin:audit:read"}
    assert not claims.is_client_token
    assert claims.raw["grant"] == "console_delegation"
    assert claims.raw["act"] == {
        "sub": OPERATOR,
        "iss": services.settings.issuer_for("platform"),
        "email": "op@example.com",
    }
    assert claims.exp - time.time() <= 300
    async with services.router.enter(b) as conn:
        with pytest.raises(VerificationError):
            (await services.keys.get(b, conn)).verifier.verify(minted.access_token)


async def test_mint_refuses_what_the_console_must_never_ask(
    provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    with pytest.raises(delegation.DelegationError):
        await delegation.mint(services, app, "not-a-uuid", None, ["admin:users:read"])
    with pytest.raises(delegation.DelegationError):
        await delegation.mint(services, app, OPERATOR, None, ["openid"])
    with pytest.raises(delegation.DelegationError):
        await delegation.mint(services, app, OPERATOR, None, [])
    platform = replace(app, app_id="platform")
    with pytest.raises(delegation.DelegationError):
        await delegation.mint(services, platform, OPERATOR, None, ["admin:users:read"])


async def test_without_a_grant_a_delegated_token_is_refused(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """Fails closed: no grant row (or no grant table yet), no access."""
    app = provision()
    minted = await delegation.mint(services, app, OPERATOR, None, sorted(APP_ADMIN_SCOPES))
    r = await client.get(f"/apps/{app.app_id}/admin/v1/users", headers=bearer(minted.access_token))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"


class Rig:
    def __init__(self, settings: Settings, services: Services, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.services = services
        self.http = http

    def grant(self, operator: str, app_id: str | None, role: str) -> None:
        with ops.connect(self.settings.operator_url) as conn:
            conn.execute(
                "INSERT INTO oneauth.console_grants (operator_sub, app_id, role)"
                " VALUES (%s, %s, %s)",
                (operator, app_id, role),
            )

    def revoke(self, operator: str) -> None:
        with ops.connect(self.settings.operator_url) as conn:
            conn.execute("DELETE FROM oneauth.console_grants WHERE operator_sub = %s", (operator,))


@pytest.fixture
async def rig(make_database: Callable[[str], object]) -> AsyncIterator[Rig]:
    """A database of its own with the grant table (the platform's control template
    0004 creates it; created here if absent, so this test runs before and after
    that branch is merged)."""
    db = make_database("grants")
    migrate_all(db.dsn)  # type: ignore[attr-defined]
    settings: Settings = db.settings(pool_min_size=1, pool_max_size=4)  # type: ignore[attr-defined]
    with ops.connect(settings.operator_url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS oneauth.console_grants (operator_sub uuid NOT NULL,"
            " app_id text, role text NOT NULL CHECK (role IN ('viewer', 'admin')))"
        )
        conn.execute(
            sql.SQL("GRANT SELECT ON oneauth.console_grants TO {}").format(
                sql.Identifier(db.service_role)  # type: ignore[attr-defined]
            )
        )
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Rig(settings, app.state.services, http)


async def test_the_guard_rechecks_the_operators_grant_on_every_call(rig: Rig) -> None:
    with ops.connect(rig.settings.operator_url) as conn:
        a = lifecycle.provision(conn, rig.settings, f"g-{uuid.uuid4().hex[:8]}", "A").app
        b = lifecycle.provision(conn, rig.settings, f"g-{uuid.uuid4().hex[:8]}", "B").app
    operator = str(uuid.uuid4())
    minted = await delegation.mint(
        rig.services, a, operator, "op@example.com", sorted(APP_ADMIN_SCOPES)
    )
    users = f"/apps/{a.app_id}/admin/v1/users"
    auth = bearer(minted.access_token)

    rig.grant(operator, b.app_id, "admin")  # a grant for another app is no grant for A
    assert (await rig.http.get(users, headers=auth)).status_code == 401

    rig.grant(operator, a.app_id, "viewer")
    assert (await rig.http.get(users, headers=auth)).status_code == 200
    r = await rig.http.post(users, json={"email": "x@example.com"}, headers=auth)
    assert r.status_code == 403  # viewer: the :read scopes only, whatever the token says
    assert r.json()["code"] == "insufficient_scope"

    rig.grant(operator, None, "admin")  # all apps
    r = await rig.http.post(users, json={"email": "made-by-op@example.com"}, headers=auth)
    assert r.status_code == 201, r.text
    async with rig.services.router.enter(a) as conn:
        row = await conn.fetchrow(
            "SELECT actor_type, actor_id, details FROM audit_log WHERE event = 'admin.user.create'"
        )
    assert row is not None
    assert (row["actor_type"], row["actor_id"]) == ("operator", operator)
    assert '"client_id": "oneauth-console"' in row["details"]
    assert '"operator_email": "op@example.com"' in row["details"]

    rig.revoke(operator)  # stops at once, not when the token expires
    assert (await rig.http.get(users, headers=auth)).status_code == 401

    # A viewer-scoped token stays a viewer token under an admin grant.
    rig.grant(operator, a.app_id, "admin")
    viewer = await delegation.mint(rig.services, a, operator, None, sorted(READ_SCOPES))
    r = await rig.http.post(
        users, json={"email": "y@example.com"}, headers=bearer(viewer.access_token)
    )
    assert r.status_code == 403
