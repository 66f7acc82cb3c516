"""The app admin API's signing keys (issue 15, T3, B1)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from admin._support import admin_token, bearer
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings


def v1(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1"


async def jwks(client: httpx.AsyncClient, app: AppRecord) -> set[str]:
    return {
        k["kid"]
        for k in (await client.get(f"/apps/{app.app_id}/.well-known/jwks.json")).json()["keys"]
    }


async def test_rotate_then_the_jwks_shows_the_new_key(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:keys:read", "admin:keys:write"}))
    listed = (await client.get(f"{v1(app)}/keys", headers=h)).json()["items"]
    assert {k["state"] for k in listed} == {"active", "next"}
    assert all("private" not in str(k) and "d" not in k for k in listed)
    before = await jwks(client, app)
    # A next key published moments ago may not be in every cached JWKS yet: refused.
    refused = await client.post(f"{v1(app)}/keys/rotate", json={}, headers=h)
    assert refused.status_code == 409
    assert refused.json()["code"] == "key_rotation_refused"
    r = await client.post(f"{v1(app)}/keys/rotate", json={"force": True}, headers=h)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["mode"] == "normal"
    assert report["published"]
    for _ in range(100):  # NOTIFY reaches the key cache within milliseconds
        now = await jwks(client, app)
        if set(report["published"]) <= now:
            break
        await asyncio.sleep(0.05)
    assert set(report["published"]) <= now
    assert set(report["retired"]) <= now
    assert now != before
    states = {
        k["kid"]: k["state"]
        for k in (await client.get(f"{v1(app)}/keys", headers=h)).json()["items"]
    }
    assert all(states[kid] == "active" for kid in report["activated"])
    # Emergency: the active key leaves the JWKS at once.
    r = await client.post(f"{v1(app)}/keys/rotate", json={"emergency": True}, headers=h)
    revoked = set(r.json()["revoked"])
    for _ in range(100):
        if not revoked & await jwks(client, app):
            break
        await asyncio.sleep(0.05)
    assert not revoked & await jwks(client, app)
    assert (
        await client.post(f"{v1(app)}/keys/rotate", json={"all": True}, headers=h)
    ).status_code == 409
    async with services.router.enter(app) as conn:
        rows = await conn.fetch(
            "SELECT event, actor_type FROM audit_log WHERE event LIKE '%keys%' ORDER BY id"
        )
    assert [r["event"] for r in rows] == [
        "keys.rotate",
        "admin.keys.rotate",
        "keys.emergency_rotation",
        "admin.keys.rotate",
    ]
    assert {r["actor_type"] for r in rows} == {"client"}


async def test_app_b_admin_cannot_rotate_app_a_keys(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    hb = bearer(await admin_token(client, settings, b))
    before = await jwks(client, a)
    r = await client.post(f"{v1(a)}/keys/rotate", json={"emergency": True, "all": True}, headers=hb)
    assert r.status_code == 401
    r = await client.post(f"{v1(b)}/keys/rotate", json={"emergency": True, "all": True}, headers=hb)
    assert r.status_code == 200
    await asyncio.sleep(0.2)
    assert await jwks(client, a) == before
    # B's own token was signed by a key it just revoked: a fresh one lists B's keys.
    hb = bearer(await admin_token(client, settings, b))
    b_kids = {k["kid"] for k in (await client.get(f"{v1(b)}/keys", headers=hb)).json()["items"]}
    assert not before & b_kids


async def test_two_rotations_at_once_promote_one_published_key(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    """T3: of two normal rotations at once, one promotes the published next key and the
    other is refused; neither makes a key sign that no JWKS has published yet."""
    app = provision()
    h = bearer(await admin_token(client, settings, app, {"admin:keys:read", "admin:keys:write"}))
    async with services.router.enter(app) as conn:  # the next keys are old enough now
        await conn.execute(
            "UPDATE signing_keys SET activate_after = now() - interval '1 hour',"
            " created_at = created_at - interval '1 hour' WHERE state = 'next'"
        )
        published = {r["kid"] for r in await conn.fetch("SELECT kid FROM signing_keys")}
    first, second = await asyncio.gather(
        client.post(f"{v1(app)}/keys/rotate", json={}, headers=h),
        client.post(f"{v1(app)}/keys/rotate", json={}, headers=h),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)
    states = {
        k["kid"]: k["state"]
        for k in (await client.get(f"{v1(app)}/keys", headers=h)).json()["items"]
    }
    active = {kid for kid, state in states.items() if state == "active"}
    assert active <= published  # every signing key was in the JWKS before the rotation
