"""B4: the admin guard (oneauth.admin.guard) lets exactly the right token through."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx

from admin._support import admin_client, admin_token, bearer, token_of, update_client
from apiclient import signup
from oneauth.admin import delegation
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings


def users(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1/users"


async def test_the_right_token_is_accepted(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, {"admin:users:read"})
    r = await client.get(users(app), headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None}
    assert r.headers["cache-control"] == "no-store"


async def test_no_token_is_401_with_the_app_realm(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    r = await client.get(users(app))
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == f'Bearer realm="{app.app_id}"'
    r = await client.get(users(app), headers={"authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"


async def test_another_apps_admin_token_is_401(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    token_b = await admin_token(client, settings, b)
    r = await client.get(users(a), headers=bearer(token_b))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # ... and B's own admin API takes it.
    assert (await client.get(users(b), headers=bearer(token_b))).status_code == 200


async def test_a_users_token_is_403_whatever_it_carries(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    tokens = await signup(client, app.app_id, "admin-guard-user@example.com")
    r = await client.get(users(app), headers=bearer(tokens["access_token"]))
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    # A user token that somehow held every admin scope is still a user's token.
    async with services.router.enter(app) as conn:
        issuer = await services.issuer(app, conn)
    forged, _ = issuer.access_token(
        sub=tokens["user"]["id"],
        client_id="cl_whatever",
        scope="admin:users:read admin:users:write",
        ttl=300,
    )
    r = await client.get(users(app), headers=bearer(forged))
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"


async def test_a_token_of_the_platform_issuer_is_401_at_an_app(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], services: Services
) -> None:
    """Even signed with the app's own key and naming its app_id: the issuer is pinned."""
    app = provision()
    async with services.router.enter(app) as conn:
        issuer = await services.issuer(app, conn)
    platform = dataclasses.replace(
        issuer, issuer=services.settings.issuer_for(delegation.PLATFORM_APP_ID)
    )
    token, claims = platform.access_token(
        sub="cl_platformclient",
        client_id="cl_platformclient",
        scope="platform:apps:read admin:users:read",
        ttl=300,
        grant="client_credentials",
    )
    assert claims["app_id"] == app.app_id
    r = await client.get(users(app), headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"


async def test_a_token_without_the_scope_is_403_and_audited(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    cid, secret = admin_client(settings, app, {"admin:clients:read", "admin:users:write"})
    token = await token_of(client, app.app_id, cid, secret)
    r = await client.get(users(app), headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer realm="{app.app_id}", error="insufficient_scope"')
    assert 'scope="admin:users:read"' in challenge
    async with services.router.enter(app) as conn:
        row = await conn.fetchrow(
            "SELECT outcome, actor_type, actor_id, target_id, details FROM audit_log"
            " WHERE event = 'admin.denied'"
        )
    assert row is not None
    assert (row["outcome"], row["actor_type"], row["actor_id"]) == ("denied", "client", cid)
    assert row["target_id"] == f"GET {users(app)}"


async def test_a_client_whose_scope_was_taken_away_is_403_at_once(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    cid, secret = admin_client(settings, app, {"admin:users:read", "admin:audit:read"})
    token = await token_of(client, app.app_id, cid, secret)
    assert (await client.get(users(app), headers=bearer(token))).status_code == 200
    update_client(settings, app, cid, scopes=["admin:audit:read"])
    r = await client.get(users(app), headers=bearer(token))
    assert r.status_code == 403


async def test_a_disabled_clients_token_is_401(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    cid, secret = admin_client(settings, app, {"admin:users:read"})
    token = await token_of(client, app.app_id, cid, secret)
    assert (await client.get(users(app), headers=bearer(token))).status_code == 200
    update_client(settings, app, cid, disabled=True)
    r = await client.get(users(app), headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"


async def test_an_unknown_app_is_404_before_the_guard(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    token = await admin_token(client, settings, app)
    r = await client.get("/apps/no-such-app/admin/v1/users", headers=bearer(token))
    assert r.status_code == 404
    assert r.json()["code"] == "app_not_found"
