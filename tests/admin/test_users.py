"""B4: an app's users through its admin API (issue 15): every route, audited, one app only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from admin._support import admin_token, bearer
from apiclient import PASSWORD, default_client_id, login, refresh, signup
from oneauth.apps.models import AppRecord
from oneauth.identity import factors
from oneauth.services import Services
from oneauth.settings import Settings


def base(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


async def audit_rows(services: Services, app: AppRecord, event: str) -> list[Any]:
    async with services.router.enter(app) as conn:
        return list(
            await conn.fetch(
                "SELECT actor_type, actor_id, target_type, target_id, details FROM audit_log"
                " WHERE event = $1 ORDER BY id",
                event,
            )
        )


async def test_create_show_update_delete_each_audited_with_the_client(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    email = unique("Admin-Made")
    r = await client.post(
        f"{base(app)}/users", json={"email": email, "password": PASSWORD}, headers=auth
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["email"] == email
    assert made["status"] == "active"
    assert made["has_password"] is True
    assert made["email_verified"] is False
    assert PASSWORD not in r.text
    # The new user can sign in with that password (the first-party API).
    assert (await login(client, app.app_id, email)).status_code == 200

    r = await client.post(f"{base(app)}/users", json={"email": email.upper()}, headers=auth)
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"

    r = await client.get(f"{base(app)}/users/{made['id']}", headers=auth)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["user"]["id"] == made["id"]
    assert shown["sessions"] == 1
    assert (shown["factors"], shown["linked_identities"], shown["orgs"]) == ([], [], [])
    assert (shown["roles"], shown["permissions"]) == ([], [])

    r = await client.patch(
        f"{base(app)}/users/{made['id']}", json={"email_verified": True}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["email_verified"] is True
    r = await client.patch(f"{base(app)}/users/{made['id']}", json={"nope": 1}, headers=auth)
    assert r.status_code == 422
    other = await client.post(f"{base(app)}/users", json={"email": unique("o")}, headers=auth)
    r = await client.patch(
        f"{base(app)}/users/{made['id']}", json={"email": other.json()["email"]}, headers=auth
    )
    assert r.status_code == 409
    assert r.json()["code"] == "email_taken"
    moved = unique("moved")
    r = await client.patch(f"{base(app)}/users/{made['id']}", json={"email": moved}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["email"] == moved
    assert (await login(client, app.app_id, moved)).status_code == 200
    for bad in ({"email": "not an address"}, {"email": unique("w"), "password": "short"}, {}):
        r = await client.post(f"{base(app)}/users", json=bad, headers=auth)
        assert 400 <= r.status_code < 500, (bad, r.text)
        assert r.json()["code"] in ("validation_failed", "weak_password"), r.text

    r = await client.delete(f"{base(app)}/users/{made['id']}", headers=auth)
    assert r.status_code == 204
    r = await client.get(f"{base(app)}/users/{made['id']}", headers=auth)
    assert r.status_code == 404
    assert r.json()["code"] == "user_not_found"
    assert (await client.delete(f"{base(app)}/users/{made['id']}", headers=auth)).status_code == 404

    for event in ("admin.user.create", "admin.user.update", "admin.user.delete"):
        rows = [r for r in await audit_rows(services, app, event) if r["target_id"] == made["id"]]
        assert len(rows) == (2 if event == "admin.user.update" else 1), event
        assert rows[0]["actor_type"] == "client"
        assert rows[0]["actor_id"].startswith("cl_")
        assert (rows[0]["target_type"], rows[0]["target_id"]) == ("user", made["id"])


async def test_disable_ends_sessions_and_refresh_then_enable(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    email = unique("disable")
    tokens = await signup(client, app.app_id, email)
    user_id = tokens["user"]["id"]
    r = await client.post(f"{base(app)}/users/{user_id}/disable", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "disabled"
    # The refresh family ended and the user cannot sign in.
    cid = await default_client_id(client, app.app_id)
    r = await refresh(client, app.app_id, cid, tokens["refresh_token"])
    assert r.status_code == 400
    r = await client.post(
        f"/apps/{app.app_id}/v1/login", json={"email": email, "password": PASSWORD}
    )
    assert r.status_code == 401
    r = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 401
    listed = await client.get(f"{base(app)}/users?status=disabled", headers=auth)
    assert [u["id"] for u in listed.json()["items"]] == [user_id]

    r = await client.post(f"{base(app)}/users/{user_id}/enable", headers=auth)
    assert r.json()["status"] == "active"
    assert (await login(client, app.app_id, email)).status_code == 200
    [row] = await audit_rows(services, app, "admin.user.disable")
    assert row["details"]  # jsonb text
    assert '"sessions_ended": 1' in row["details"]
    assert len(await audit_rows(services, app, "admin.user.enable")) == 1


async def test_revoke_sessions_and_list_them(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    email = unique("sessions")
    tokens = await signup(client, app.app_id, email)
    await login(client, app.app_id, email)
    await login(client, app.app_id, email)
    user_id = tokens["user"]["id"]
    r = await client.get(f"{base(app)}/users/{user_id}/sessions?limit=2", headers=auth)
    assert r.status_code == 200, r.text
    first = r.json()
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    r = await client.get(
        f"{base(app)}/users/{user_id}/sessions?limit=2&cursor={first['next_cursor']}", headers=auth
    )
    second = r.json()
    assert len(second["items"]) == 1
    assert second["next_cursor"] is None
    ids = {s["id"] for s in first["items"] + second["items"]}
    assert len(ids) == 3

    r = await client.post(f"{base(app)}/users/{user_id}/sessions/revoke", headers=auth)
    assert r.json() == {"revoked": 3}
    r = await client.get(f"{base(app)}/users/{user_id}/sessions", headers=auth)
    assert r.json() == {"items": [], "next_cursor": None}
    r = await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(tokens["access_token"]))
    assert r.status_code == 401


async def test_reset_mfa_removes_every_factor_and_mails_the_user(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    email = unique("mfa")
    user_id = uuid.UUID((await signup(client, app.app_id, email))["user"]["id"])
    async with services.router.enter(app) as conn:
        factor = await factors.create_totp(
            conn, factor_id=uuid.uuid4(), user_id=user_id, name="Phone", secret_sealed="x"
        )
        await conn.execute("UPDATE mfa_factors SET confirmed_at = now() WHERE id = $1", factor.id)
        await factors.replace_recovery_codes(conn, user_id, [b"a" * 32, b"b" * 32])
    shown = (await client.get(f"{base(app)}/users/{user_id}", headers=auth)).json()
    assert sorted(f["kind"] for f in shown["factors"]) == ["recovery_codes", "totp"]
    assert (
        next(f for f in shown["factors"] if f["kind"] == "recovery_codes")["recovery_codes_left"]
        == 2
    )
    assert "secret" not in str(shown["factors"])

    r = await client.post(f"{base(app)}/users/{user_id}/mfa/reset", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"totp_removed": 1, "passkeys_removed": 0, "recovery_codes_removed": 1}
    async with services.router.enter(app) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM mfa_factors WHERE user_id = $1", user_id) == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM recovery_codes") == 0
        mailed = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'mfa_factor_removed' AND recipient = $1",
            email,
        )
    assert mailed == 1
    assert len(await audit_rows(services, app, "admin.user.mfa_reset")) == 1


async def test_list_by_email_prefix_and_keyset_pages(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    for i in range(5):
        r = await client.post(
            f"{base(app)}/users", json={"email": f"Pat{i}@Example.com"}, headers=auth
        )
        assert r.status_code == 201
    await client.post(f"{base(app)}/users", json={"email": "robin@example.com"}, headers=auth)
    await client.post(f"{base(app)}/users", json={"email": "pat_x@example.com"}, headers=auth)

    seen: list[str] = []
    cursor = None
    while True:
        url = f"{base(app)}/users?email=PAT&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=auth)).json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Pat{i}@Example.com" for i in range(5)] + ["pat_x@example.com"]
    # LIKE wildcards in the prefix are literal.
    r = await client.get(f"{base(app)}/users?email=pat_", headers=auth)
    assert [u["email"] for u in r.json()["items"]] == ["pat_x@example.com"]
    r = await client.get(f"{base(app)}/users?email=p%25", headers=auth)
    assert r.json()["items"] == []
    r = await client.get(f"{base(app)}/users?email=ROBIN%40example.com", headers=auth)
    assert [u["email"] for u in r.json()["items"]] == ["robin@example.com"]
    # An empty search box is no filter.
    r = await client.get(f"{base(app)}/users?email=&cursor=&limit=10", headers=auth)
    assert len(r.json()["items"]) == 7

    everyone: list[str] = []
    cursor = None
    while True:
        url = f"{base(app)}/users?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=auth)).json()
        everyone += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(everyone) == len(set(everyone)) == 7


async def test_cursor_tampering_and_bad_query_are_422(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    import base64
    import json

    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    for i in range(3):
        await client.post(f"{base(app)}/users", json={"email": f"c{i}@example.com"}, headers=auth)
    page = (await client.get(f"{base(app)}/users?limit=1", headers=auth)).json()
    good = page["next_cursor"]

    def b64(value: object) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    decoded = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    bad = [
        "not-base64!!",
        good[:-3],
        b64([1, 2]),
        b64({"id": decoded["id"]}),
        b64({**decoded, "extra": 1}),
        b64({**decoded, "id": "not-a-uuid"}),
        b64({**decoded, "created_at": "yesterday"}),
        b64({**decoded, "created_at": "2026-01-01T00:00:00"}),  # no timezone
        b64({**decoded, "created_at": 5}),
        b64({"email_normalized": "a@example.com"}),  # a cursor of the email search
        "x" * 2000,
    ]
    for cursor in bad:
        r = await client.get(f"{base(app)}/users", params={"cursor": cursor}, headers=auth)
        assert r.status_code == 422, (cursor, r.text)
        assert r.json()["code"] == "validation_failed"
        assert r.json()["field"] == "cursor"
    for params in ({"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"status": "deleted"}):
        r = await client.get(f"{base(app)}/users", params=params, headers=auth)
        assert r.status_code == 422, params
    r = await client.get(f"{base(app)}/users?limit=1&limit=2", headers=auth)
    assert r.status_code == 422
    r = await client.get(f"{base(app)}/users?bogus=1", headers=auth)
    assert r.status_code == 422


async def test_idempotent_create_replays_and_refuses_a_reused_key(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    body = {"email": unique("idem")}
    headers = {**auth, "idempotency-key": "create-1"}
    first = await client.post(f"{base(app)}/users", json=body, headers=headers)
    assert first.status_code == 201
    assert "idempotency-replayed" not in first.headers
    again = await client.post(f"{base(app)}/users", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post(
        f"{base(app)}/users", json={"email": unique("other")}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # Another client's same key is its own.
    auth2 = bearer(await admin_token(client, settings, app))
    mine = await client.post(
        f"{base(app)}/users", json=body, headers={**auth2, "idempotency-key": "create-1"}
    )
    assert mine.status_code == 409  # a new create of a taken address, not a replay
    for key in (b"", b"x" * 256, "h\xe9llo".encode("latin-1"), b"a b"):
        r = await client.post(
            f"{base(app)}/users",
            json={"email": unique("k")},
            headers=[
                *((k.encode(), v.encode()) for k, v in auth.items()),
                (b"idempotency-key", key),
            ],
        )
        assert r.status_code == 422, key
    assert len(await audit_rows(services, app, "admin.user.create")) == 1
    async with services.router.enter(app) as conn:
        stored = await conn.fetchval("SELECT response_sealed FROM admin_idempotency")
    assert body["email"] not in stored  # sealed at rest


async def test_two_creates_with_one_key_at_once_create_one_user(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    body = {"email": unique("race"), "password": PASSWORD}  # hashing widens the window
    headers = {**auth, "idempotency-key": "race-key"}
    answers = await asyncio.gather(
        *(client.post(f"{base(app)}/users", json=body, headers=headers) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotency-replayed") == "true" for a in answers) == 3
    assert len(await audit_rows(services, app, "admin.user.create")) == 1


async def test_app_b_admin_sees_none_of_as_users(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    auth_a = bearer(await admin_token(client, settings, a))
    auth_b = bearer(await admin_token(client, settings, b))
    user_a = (
        await client.post(f"{base(a)}/users", json={"email": unique("cross")}, headers=auth_a)
    ).json()
    assert (await client.get(f"{base(b)}/users", headers=auth_b)).json()["items"] == []
    r = await client.get(f"{base(b)}/users?email=cross", headers=auth_b)
    assert r.json()["items"] == []
    uid = user_a["id"]
    for method, path in [
        ("GET", f"/users/{uid}"),
        ("PATCH", f"/users/{uid}"),
        ("DELETE", f"/users/{uid}"),
        ("POST", f"/users/{uid}/disable"),
        ("POST", f"/users/{uid}/enable"),
        ("POST", f"/users/{uid}/sessions/revoke"),
        ("POST", f"/users/{uid}/mfa/reset"),
        ("GET", f"/users/{uid}/sessions"),
    ]:
        kwargs: dict[str, Any] = {"json": {}} if method == "PATCH" else {}
        r = await client.request(method, f"{base(b)}{path}", headers=auth_b, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "user_not_found"
        # ... and A's user is untouched: B's token does nothing at A either.
        r = await client.request(method, f"{base(a)}{path}", headers=auth_b, **kwargs)
        assert r.status_code == 401
    r = await client.get(f"{base(a)}/users/{uid}", headers=auth_a)
    assert r.json()["user"]["status"] == "active"
    r = await client.get(f"{base(a)}/users/not-a-uuid", headers=auth_a)
    assert r.status_code == 404


async def test_show_names_the_users_orgs_roles_and_permissions(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    services: Services,
) -> None:
    from oneauth.orgs import roles
    from oneauth.orgs import service as orgs
    from oneauth.orgs.actor import OPERATOR

    app = provision()
    auth = bearer(await admin_token(client, settings, app))
    user = (
        await client.post(f"{base(app)}/users", json={"email": unique("o")}, headers=auth)
    ).json()
    async with services.router.enter(app) as conn:
        await roles.create_role(conn, "billing", permissions=["invoice:read"], actor=OPERATOR)
        await roles.grant(conn, user["id"], "billing", actor=OPERATOR)
        org = await orgs.create(conn, name="Acme", creator=user["id"], actor=OPERATOR)
    shown = (await client.get(f"{base(app)}/users/{user['id']}", headers=auth)).json()
    assert shown["roles"] == ["billing"]
    assert shown["permissions"] == ["invoice:read"]
    assert [(o["id"], o["slug"], o["name"]) for o in shown["orgs"]] == [(org.id, org.slug, "Acme")]
    assert shown["orgs"][0]["roles"] == ["admin"]
