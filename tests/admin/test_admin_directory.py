"""The app admin API's roles, permissions and organizations (issue 15, B1, B4)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from admin._support import admin_client, admin_token, bearer, token_of
from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings


def v1(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1"


async def test_roles_and_permissions_round_trip_and_are_audited(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    cid, secret = admin_client(settings, app, {"admin:roles:read", "admin:roles:write"})
    h = bearer(await token_of(client, app.app_id, cid, secret))
    r = await client.post(
        f"{v1(app)}/roles", json={"name": "billing", "permissions": ["invoice:read"]}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["permissions"] == ["invoice:read"]
    assert (
        await client.post(f"{v1(app)}/roles", json={"name": "billing"}, headers=h)
    ).status_code == 409
    r = await client.patch(
        f"{v1(app)}/roles/billing",
        json={"permissions": ["invoice:read", "invoice:write"]},
        headers=h,
    )
    assert r.status_code == 200
    assert r.json()["permissions"] == ["invoice:read", "invoice:write"]
    names = [
        p["name"] for p in (await client.get(f"{v1(app)}/permissions", headers=h)).json()["items"]
    ]
    assert {"invoice:read", "invoice:write"} <= set(names)
    # Keyset pages: limit 1 walks every role exactly once.
    await client.post(f"{v1(app)}/roles", json={"name": "auditor"}, headers=h)
    seen, cursor = [], None
    while True:
        page = (
            await client.get(
                f"{v1(app)}/roles",
                params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                headers=h,
            )
        ).json()
        seen += [r["name"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["auditor", "billing"]
    bad = await client.get(f"{v1(app)}/roles", params={"cursor": "!!"}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["field"] == "cursor"
    # Grant to a user, then revoke.
    user = (await signup(client, app.app_id, "dir-roles@example.com"))["user"]["id"]
    r = await client.post(f"{v1(app)}/users/{user}/roles/billing", headers=h)
    assert r.status_code == 200
    assert r.json()["roles"] == ["billing"]
    assert r.json()["changed"]
    r = await client.delete(f"{v1(app)}/users/{user}/roles/billing", headers=h)
    assert r.json() == {"user_id": user, "role": "billing", "changed": True, "roles": []}
    assert (await client.delete(f"{v1(app)}/roles/billing", headers=h)).status_code == 204
    assert (await client.get(f"{v1(app)}/roles/billing", headers=h)).status_code == 404
    # org:* permissions run org management: they stay.
    assert (await client.delete(f"{v1(app)}/permissions/org:read", headers=h)).status_code == 409
    async with services.router.enter(app) as conn:
        rows = await conn.fetch(
            "SELECT event, actor_type, actor_id FROM audit_log"
            " WHERE event LIKE 'admin.role.%' OR event LIKE 'role.%' ORDER BY id"
        )
    events = [r["event"] for r in rows]
    assert "role.create" in events
    assert "admin.role.create" in events
    assert "admin.role.grant" in events
    assert "admin.role.delete" in events
    assert {(r["actor_type"], r["actor_id"]) for r in rows} == {("client", cid)}


async def test_org_lifecycle_members_invitations(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:orgs:read", "admin:orgs:write"}))
    ada = (await signup(client, app.app_id, "ada-org@example.com"))["user"]["id"]
    r = await client.post(
        f"{v1(app)}/orgs", json={"name": "Acme Inc.", "admin_user_id": ada}, headers=h
    )
    assert r.status_code == 201, r.text
    org = r.json()
    assert org["slug"] == "acme-inc"
    assert org["status"] == "active"
    r = await client.patch(
        f"{v1(app)}/orgs/{org['id']}",
        json={"join_policy": "offer", "branding": {"primary_color": "#112233"}},
        headers=h,
    )
    assert r.status_code == 200
    assert r.json()["branding"] == {"primary_color": "#112233"}
    assert (await client.get(f"{v1(app)}/orgs/acme-inc", headers=h)).json()["id"] == org["id"]
    bob = (await signup(client, app.app_id, "bob-org@example.com"))["user"]["id"]
    r = await client.post(f"{v1(app)}/orgs/{org['id']}/members", json={"user_id": bob}, headers=h)
    assert r.status_code == 201
    assert r.json()["roles"] == ["member"]
    members = (await client.get(f"{v1(app)}/orgs/{org['id']}/members", headers=h)).json()
    assert [m["email"] for m in members["items"]] == ["ada-org@example.com", "bob-org@example.com"]
    r = await client.post(
        f"{v1(app)}/orgs/{org['id']}/invitations", json={"email": "cy@example.com"}, headers=h
    )
    assert r.status_code == 201
    assert "token" not in r.text
    invitation = r.json()["id"]
    listed = (await client.get(f"{v1(app)}/orgs/{org['id']}/invitations", headers=h)).json()
    assert [i["id"] for i in listed["items"]] == [invitation]
    assert (
        await client.delete(f"{v1(app)}/orgs/{org['id']}/invitations/{invitation}", headers=h)
    ).status_code == 204
    assert (
        await client.delete(f"{v1(app)}/orgs/{org['id']}/members/{bob}", headers=h)
    ).status_code == 204
    r = await client.delete(f"{v1(app)}/orgs/{org['id']}", headers=h)
    assert r.status_code == 200
    assert r.json()["deleted"] is True
    assert (await client.get(f"{v1(app)}/orgs/{org['id']}", headers=h)).status_code == 404


async def test_a_suspended_org_gets_no_new_org_tokens(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    h = bearer(
        await admin_token(client, settings, app, {"admin:orgs:write", "admin:clients:write"})
    )
    org = (await client.post(f"{v1(app)}/orgs", json={"name": "Tenant"}, headers=h)).json()
    made = await client.post(
        f"{v1(app)}/clients",
        json={
            "name": "tenant service",
            "confidential": True,
            "grant_types": ["client_credentials"],
            "scopes": ["orders:read"],
            "org_id": org["id"],
        },
        headers=h,
    )
    assert made.status_code == 201, made.text
    cid, secret = made.json()["client"]["client_id"], made.json()["client_secret"]
    assert await token_of(client, app.app_id, cid, secret)
    assert (await client.post(f"{v1(app)}/orgs/{org['id']}/suspend", headers=h)).json()[
        "status"
    ] == "suspended"
    refused = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, secret),
    )
    assert refused.status_code in (400, 401, 403), refused.text
    assert (await client.post(f"{v1(app)}/orgs/{org['id']}/resume", headers=h)).json()[
        "status"
    ] == "active"
    assert await token_of(client, app.app_id, cid, secret)


async def test_app_b_admin_cannot_see_or_change_app_a_roles_and_orgs(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    ha = bearer(await admin_token(client, settings, a))
    hb = bearer(await admin_token(client, settings, b))
    org = (await client.post(f"{v1(a)}/orgs", json={"name": "Only A"}, headers=ha)).json()
    await client.post(f"{v1(a)}/roles", json={"name": "a-only"}, headers=ha)
    user = (await signup(client, a.app_id, "only-a@example.com"))["user"]["id"]
    # B's admin, at B, with A's ids: nothing (404), and B's lists do not show A's rows.
    for method, path in (
        ("GET", f"/orgs/{org['id']}"),
        ("GET", f"/orgs/{org['slug']}"),
        ("PATCH", f"/orgs/{org['id']}"),
        ("POST", f"/orgs/{org['id']}/suspend"),
        ("DELETE", f"/orgs/{org['id']}"),
        ("GET", f"/orgs/{org['id']}/members"),
        ("GET", "/roles/a-only"),
        ("DELETE", "/roles/a-only"),
        ("POST", f"/users/{user}/roles/a-only"),
    ):
        r = await client.request(
            method, f"{v1(b)}{path}", json={} if method == "PATCH" else None, headers=hb
        )
        assert r.status_code == 404, (method, path, r.text)
    assert (await client.get(f"{v1(b)}/orgs", headers=hb)).json()["items"] == []
    assert "a-only" not in {
        r["name"] for r in (await client.get(f"{v1(b)}/roles", headers=hb)).json()["items"]
    }
    # ... and at A, B's token is refused outright.
    assert (await client.get(f"{v1(a)}/orgs", headers=hb)).status_code == 401
    assert (await client.get(f"{v1(a)}/orgs/{org['id']}", headers=ha)).json()["status"] == "active"
