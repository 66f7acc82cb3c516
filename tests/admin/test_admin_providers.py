"""The app admin API's upstream providers (issue 15): the secret is write-only (A2), B1."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from admin._support import admin_token, bearer
from oneauth.apps.models import AppRecord
from oneauth.federation import providers
from oneauth.services import Services
from oneauth.settings import Settings

SECRET = "upstream-secret-7f3a9c"
GOOGLE = {"kind": "google", "name": "Google", "client_id": "123.apps", "client_secret": SECRET}


def v1(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1"


async def test_provider_secret_is_never_returned(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    h = bearer(
        await admin_token(client, settings, app, {"admin:providers:read", "admin:providers:write"})
    )
    r = await client.post(f"{v1(app)}/providers", json=GOOGLE, headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["issuer"] == "https://accounts.google.com"
    assert (
        made["callback_url"]
        == f"{settings.issuer_for(app.app_id)}/federation/{made['id']}/callback"
    )
    r2 = await client.patch(
        f"{v1(app)}/providers/{made['id']}",
        json={"client_secret": SECRET + "-2", "enabled": False},
        headers=h,
    )
    assert r2.status_code == 200
    assert r2.json()["enabled"] is False
    answers = [
        r,
        r2,
        await client.get(f"{v1(app)}/providers/{made['id']}", headers=h),
        await client.get(f"{v1(app)}/providers", headers=h),
    ]
    for answer in answers:
        assert SECRET not in answer.text
        items = answer.json().get("items", [answer.json()])
        assert all("client_secret" not in item for item in items)
    async with services.router.enter(app) as conn:
        stored = await providers.get_async(conn, made["id"])
        audit_rows = await conn.fetch("SELECT details::text AS d FROM audit_log")
    assert stored is not None
    # Sealed with the app and provider bound in; the new secret is what opens.
    assert providers.open_secret(services.box, app.app_id, stored) == SECRET + "-2"
    assert all(SECRET not in row["d"] for row in audit_rows)
    bad = await client.post(f"{v1(app)}/providers", json={**GOOGLE, "kind": "oidc"}, headers=h)
    assert bad.status_code == 422  # oidc needs an issuer
    assert (await client.delete(f"{v1(app)}/providers/{made['id']}", headers=h)).status_code == 204
    assert (await client.get(f"{v1(app)}/providers/{made['id']}", headers=h)).status_code == 404


async def test_app_b_admin_cannot_see_or_change_app_a_providers(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    ha = bearer(await admin_token(client, settings, a))
    hb = bearer(await admin_token(client, settings, b))
    pid = (await client.post(f"{v1(a)}/providers", json=GOOGLE, headers=ha)).json()["id"]
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        r = await client.request(method, f"{v1(b)}/providers/{pid}", json=body, headers=hb)
        assert r.status_code == 404, (method, r.text)
    assert (await client.get(f"{v1(b)}/providers", headers=hb)).json()["items"] == []
    assert (await client.get(f"{v1(a)}/providers/{pid}", headers=ha)).json()["name"] == "Google"
