"""The webhook routes of the admin API: scopes, secrets shown once, replay, cross-app."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx

from admin._support import admin_token, bearer
from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.settings import Settings

from ._receiver import Receiver
from .conftest import make_worker

RW = ("admin:webhooks:read", "admin:webhooks:write")


def _base(app: AppRecord) -> str:
    return f"/apps/{app.app_id}/admin/v1/webhooks"


async def _create(
    client: httpx.AsyncClient, app: AppRecord, token: str, url: str, **extra: object
) -> httpx.Response:
    body = {"url": url, "event_types": ["user.created"], **extra}
    return await client.post(_base(app), json=body, headers=bearer(token))


async def test_endpoint_lifecycle_secret_once_rotate_deliveries_and_replay(
    services: Services,
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, RW)
    name = f"adm-{app.app_id}"
    made = await _create(client, app, token, receiver.configure(name), description="crm")
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    endpoint = made.json()["endpoint"]
    assert secret.startswith("whsec_")
    assert endpoint["id"].startswith("whe_")
    receiver.expect(name, secret)
    # No GET ever shows the secret.
    listed = await client.get(_base(app), headers=bearer(token))
    shown = await client.get(f"{_base(app)}/{endpoint['id']}", headers=bearer(token))
    assert listed.status_code == 200
    assert shown.status_code == 200
    assert [e["id"] for e in listed.json()["items"]] == [endpoint["id"]]
    assert secret not in listed.text
    assert secret not in shown.text
    assert shown.json()["description"] == "crm"
    types = await client.get(f"{_base(app)}/event-types", headers=bearer(token))
    assert "user.created" in {t["type"] for t in types.json()["items"]}

    # Rotate: the delivery after it is signed with the new secret only.
    rotated = await client.post(f"{_base(app)}/{endpoint['id']}/secret", headers=bearer(token))
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    receiver.expect(name, new_secret)
    await signup(client, app.app_id, f"adm-{uuid.uuid4().hex[:8]}@example.com")
    await make_worker(services).deliver_app(app)
    [got] = receiver.of(name)
    assert got.valid

    deliveries = await client.get(
        f"{_base(app)}/{endpoint['id']}/deliveries?status=delivered", headers=bearer(token)
    )
    assert deliveries.status_code == 200, deliveries.text
    [row] = deliveries.json()["items"]
    assert row["status"] == "delivered"
    assert row["payload"]["type"] == "user.created"
    none_dead = await client.get(
        f"{_base(app)}/{endpoint['id']}/deliveries?status=dead", headers=bearer(token)
    )
    assert none_dead.json() == {"items": [], "next_cursor": None}
    bad = await client.get(
        f"{_base(app)}/{endpoint['id']}/deliveries?status=lost", headers=bearer(token)
    )
    assert bad.status_code == 422

    replayed = await client.post(
        f"{_base(app)}/deliveries/{row['id']}/replay", headers=bearer(token)
    )
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["replay_of"] == row["id"]
    await make_worker(services).deliver_app(app)
    again = receiver.of(name)
    assert len(again) == 2
    assert again[1].valid
    assert again[1].headers["webhook-id"] == again[0].headers["webhook-id"]

    # Pages: two endpoints, one per page.
    await _create(client, app, token, receiver.configure(f"{name}-2"))
    first = await client.get(f"{_base(app)}?limit=1", headers=bearer(token))
    assert first.json()["next_cursor"]
    second = await client.get(
        f"{_base(app)}?limit=1&cursor={first.json()['next_cursor']}", headers=bearer(token)
    )
    assert [e["id"] for e in first.json()["items"] + second.json()["items"]] != []
    assert first.json()["items"][0]["id"] != second.json()["items"][0]["id"]
    assert second.json()["next_cursor"] is None

    # Disable, then delete.
    patched = await client.patch(
        f"{_base(app)}/{endpoint['id']}", json={"enabled": False}, headers=bearer(token)
    )
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    gone = await client.delete(f"{_base(app)}/{endpoint['id']}", headers=bearer(token))
    assert gone.status_code == 204
    missing = await client.get(f"{_base(app)}/{endpoint['id']}", headers=bearer(token))
    assert missing.status_code == 404

    async with services.router.enter(app) as conn:
        events = [
            r["event"]
            for r in await conn.fetch(
                "SELECT event FROM audit_log WHERE event LIKE 'admin.webhook.%' ORDER BY id"
            )
        ]
    assert events == [
        "admin.webhook.create",
        "admin.webhook.rotate_secret",
        "admin.webhook.replay",
        "admin.webhook.create",
        "admin.webhook.update",
        "admin.webhook.delete",
    ]


async def test_bad_input_is_a_clear_422(
    settings: Settings, client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, RW)
    for body, field in [
        ({"url": "http://example.com/h", "event_types": ["user.created"]}, "url"),
        ({"url": "https://example.com/h", "event_types": ["user.exploded"]}, "event_types"),
        ({"url": "https://example.com/h", "event_types": []}, "event_types"),
    ]:
        r = await client.post(_base(app), json=body, headers=bearer(token))
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "validation_failed"
        assert r.json()["field"] == field
    for path in ("whe_nope000000000000000", "not-an-id"):
        r = await client.get(f"{_base(app)}/{path}", headers=bearer(token))
        assert r.status_code == 404
    r = await client.post(f"{_base(app)}/deliveries/abc/replay", headers=bearer(token))
    assert r.status_code == 404


async def test_scopes(
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    reader = await admin_token(client, settings, app, ["admin:webhooks:read"])
    users_only = await admin_token(client, settings, app, ["admin:users:read", "admin:users:write"])
    refused = await _create(client, app, reader, receiver.configure("scoped"))
    assert refused.status_code == 403
    assert 'scope="admin:webhooks:write"' in refused.headers["www-authenticate"]
    assert (await client.get(_base(app), headers=bearer(reader))).status_code == 200
    assert (await client.get(_base(app), headers=bearer(users_only))).status_code == 403
    assert (await client.get(_base(app))).status_code == 401


async def test_app_b_admin_cannot_see_or_replay_app_a_webhooks(
    services: Services,
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    a, b = provision(), provision()
    token_a = await admin_token(client, settings, a, RW)
    token_b = await admin_token(client, settings, b, RW)
    made = await _create(client, a, token_a, receiver.configure(f"cross-{a.app_id}"))
    endpoint_id = made.json()["endpoint"]["id"]
    receiver.expect(f"cross-{a.app_id}", made.json()["secret"])
    await signup(client, a.app_id, f"x-{uuid.uuid4().hex[:8]}@example.com")
    await make_worker(services).deliver_app(a)
    rows = await client.get(f"{_base(a)}/{endpoint_id}/deliveries", headers=bearer(token_a))
    delivery_id = rows.json()["items"][0]["id"]
    # B's admin, at B: A's endpoint and delivery do not exist there.
    assert (await client.get(_base(b), headers=bearer(token_b))).json()["items"] == []
    for method, path in [
        ("GET", f"{_base(b)}/{endpoint_id}"),
        ("GET", f"{_base(b)}/{endpoint_id}/deliveries"),
        ("POST", f"{_base(b)}/{endpoint_id}/secret"),
        ("DELETE", f"{_base(b)}/{endpoint_id}"),
        ("POST", f"{_base(b)}/deliveries/{delivery_id}/replay"),
    ]:
        r = await client.request(method, path, headers=bearer(token_b))
        assert r.status_code == 404, (method, path, r.text)
    # B's token at A's admin API: refused (A's key set does not know it).
    for method, path in [
        ("GET", _base(a)),
        ("GET", f"{_base(a)}/{endpoint_id}/deliveries"),
        ("POST", f"{_base(a)}/deliveries/{delivery_id}/replay"),
    ]:
        r = await client.request(method, path, headers=bearer(token_b))
        assert r.status_code == 401, (method, path, r.text)
    # Nothing was replayed at A, and B's log holds no webhook action.
    again = await client.get(f"{_base(a)}/{endpoint_id}/deliveries", headers=bearer(token_a))
    assert len(again.json()["items"]) == 1
    async with services.router.enter(b) as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event LIKE 'admin.webhook.%'"
        )
    assert json.loads(rows.text)["items"][0]["payload"]["app_id"] == a.app_id


async def test_admin_user_changes_emit_their_events(
    services: Services,
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    from oneauth.webhooks import EVENT_TYPES

    app = provision()
    hooks = await admin_token(client, settings, app, RW)
    users = await admin_token(client, settings, app, ["admin:users:read", "admin:users:write"])
    made = await client.post(
        _base(app), json={"url": receiver.configure("users"), "event_types": list(EVENT_TYPES)},
        headers=bearer(hooks),
    )  # fmt: skip
    assert made.status_code == 201
    admin_users = f"/apps/{app.app_id}/admin/v1/users"
    addr = f"adm-{uuid.uuid4().hex[:8]}@example.com"
    user = await client.post(admin_users, json={"email": addr}, headers=bearer(users))
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    new_addr = f"new-{addr}"
    patched = await client.patch(
        f"{admin_users}/{user_id}", json={"email": new_addr}, headers=bearer(users)
    )
    assert patched.status_code == 200, patched.text
    assert (await client.post(f"{admin_users}/{user_id}/disable", headers=bearer(users))).is_success
    assert (await client.delete(f"{admin_users}/{user_id}", headers=bearer(users))).is_success
    endpoint_id = made.json()["endpoint"]["id"]
    rows = await client.get(f"{_base(app)}/{endpoint_id}/deliveries", headers=bearer(hooks))
    events = [(d["event_type"], d["payload"]["data"]) for d in reversed(rows.json()["items"])]
    assert events == [
        ("user.created", {"user_id": user_id, "email": addr, "via": "admin"}),
        ("user.email_changed", {"user_id": user_id, "email": new_addr}),
        ("user.disabled", {"user_id": user_id}),
        ("user.deleted", {"user_id": user_id}),
    ]


async def test_create_with_an_idempotency_key_makes_one_endpoint(
    settings: Settings,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    receiver: Receiver,
) -> None:
    app = provision()
    token = await admin_token(client, settings, app, RW)
    body = {"url": receiver.configure("idem"), "event_types": ["user.created"]}
    headers = {**bearer(token), "idempotency-key": uuid.uuid4().hex}
    first = await client.post(_base(app), json=body, headers=headers)
    again = await client.post(_base(app), json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.headers.get("idempotency-replayed") == "true"
    assert again.json() == first.json()  # the same endpoint, the same secret shown
    listed = await client.get(_base(app), headers=bearer(token))
    assert len(listed.json()["items"]) == 1
    other = await client.post(_base(app), json={**body, "description": "x"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
