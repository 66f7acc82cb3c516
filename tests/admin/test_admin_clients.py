"""The app admin API's clients (issue 15): the secret is shown once (O5), B1, B4."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from admin._support import admin_token, bearer, token_of
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

SERVICE = {
    "name": "billing",
    "confidential": True,
    "grant_types": ["client_credentials"],
    "scopes": ["orders:read"],
}


def v1(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1"


async def test_create_shows_the_secret_once_and_it_works(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    h = bearer(
        await admin_token(client, settings, app, {"admin:clients:read", "admin:clients:write"})
    )
    r = await client.post(f"{v1(app)}/clients", json=SERVICE, headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"].startswith("no-store")
    cid, secret = r.json()["client"]["client_id"], r.json()["client_secret"]
    assert secret.startswith("ocs_")
    assert await token_of(client, app.app_id, cid, secret, "orders:read")
    # No GET shows it: neither one client nor the list.
    one = await client.get(f"{v1(app)}/clients/{cid}", headers=h)
    listed = await client.get(f"{v1(app)}/clients", headers=h)
    for answer in (one, listed):
        assert answer.status_code == 200
        assert secret not in answer.text
        assert "secret" not in answer.json().__repr__().replace("client_secret_basic", "")
    assert cid in {c["client_id"] for c in listed.json()["items"]}
    async with services.router.enter(app) as conn:
        count = await conn.fetchval("SELECT count(*) FROM clients WHERE name = 'billing'")
        row = await conn.fetchrow(
            "SELECT actor_type, actor_id, details::text AS d FROM audit_log"
            " WHERE event = 'admin.client.create'"
        )
    assert count == 1
    assert row["actor_type"] == "client"
    assert secret not in row["d"]


async def test_an_idempotent_create_replays_the_same_client(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    h = {
        **bearer(await admin_token(client, settings, app, {"admin:clients:write"})),
        "idempotency-key": "create-billing-1",
    }
    first, second = await asyncio.gather(
        client.post(f"{v1(app)}/clients", json=SERVICE, headers=h),
        client.post(f"{v1(app)}/clients", json=SERVICE, headers=h),
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json() == second.json()
    async with services.router.enter(app) as conn:
        count = await conn.fetchval("SELECT count(*) FROM clients WHERE name = 'billing'")
    assert count == 1


async def test_rotate_then_disable(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:clients:write"}))
    made = (await client.post(f"{v1(app)}/clients", json=SERVICE, headers=h)).json()
    cid, old = made["client"]["client_id"], made["client_secret"]
    r = await client.post(
        f"{v1(app)}/clients/{cid}/secrets", json={"overlap_seconds": 0}, headers=h
    )
    assert r.status_code == 200, r.text
    new = r.json()["client_secret"]
    assert new != old
    await asyncio.sleep(0.2)  # the NOTIFY reaches the client cache
    assert await token_of(client, app.app_id, cid, new)
    stale = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, old),
    )
    assert stale.status_code == 401
    r = await client.patch(f"{v1(app)}/clients/{cid}", json={"scopes": ["orders:write"]}, headers=h)
    assert r.status_code == 200
    assert r.json()["scopes"] == ["orders:write"]
    r = await client.post(f"{v1(app)}/clients/{cid}/disable", headers=h)
    assert r.status_code == 200
    assert r.json()["disabled"] is True
    await asyncio.sleep(0.2)
    refused = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, new),
    )
    assert refused.status_code == 401


async def test_no_admin_scope_beyond_the_callers_own(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:clients:write"}))
    r = await client.post(
        f"{v1(app)}/clients", json={**SERVICE, "scopes": ["admin:users:write"]}, headers=h
    )
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_scope"
    r = await client.post(
        f"{v1(app)}/clients", json={**SERVICE, "scopes": ["admin:clients:write"]}, headers=h
    )
    assert r.status_code == 201, r.text
    bad = await client.post(
        f"{v1(app)}/clients",
        json={"name": "web", "redirect_uris": ["http://evil.example/cb"]},
        headers=h,
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_failed"


async def test_app_b_admin_cannot_see_or_change_app_a_clients(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    ha = bearer(await admin_token(client, settings, a))
    hb = bearer(await admin_token(client, settings, b))
    cid = (await client.post(f"{v1(a)}/clients", json=SERVICE, headers=ha)).json()["client"][
        "client_id"
    ]
    for method, path, body in (
        ("GET", f"/clients/{cid}", None),
        ("PATCH", f"/clients/{cid}", {"name": "taken"}),
        ("POST", f"/clients/{cid}/disable", None),
        ("POST", f"/clients/{cid}/secrets", {}),
    ):
        r = await client.request(method, f"{v1(b)}{path}", json=body, headers=hb)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "client_not_found"
    assert cid not in {
        c["client_id"] for c in (await client.get(f"{v1(b)}/clients", headers=hb)).json()["items"]
    }
    assert (await client.get(f"{v1(a)}/clients/{cid}", headers=ha)).json()["disabled"] is False
