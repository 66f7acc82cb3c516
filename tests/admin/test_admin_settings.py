"""The app admin API's settings (issue 15): GET answers the ETag a PATCH must send."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx

from admin._support import admin_token, bearer
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.settings import Settings


async def test_settings_etag_names_what_is_stored_now(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
    sync_conn: lifecycle.Conn,
) -> None:
    app = provision()
    url = f"/apps/{app.app_id}/admin/v1/settings"
    h = bearer(await admin_token(client, settings, app, {"admin:settings:read"}))
    r = await client.get(url, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["effective"]["passwordless"] is False
    canonical = json.dumps(body["settings"], sort_keys=True, separators=(",", ":"))
    assert r.headers["etag"] == '"' + hashlib.sha256(canonical.encode()).hexdigest() + '"'
    first = r.headers["etag"]
    # The operator changes a setting: the next GET shows it (read fresh, not from the
    # process cache) with another ETag, so an If-Match with the first one is stale.
    lifecycle.configure(sync_conn, app.app_id, set_values={"passwordless": True})
    r = await client.get(url, headers=h)
    assert r.json()["settings"]["passwordless"] is True
    assert r.json()["effective"]["passwordless"] is True
    assert r.headers["etag"] != first


async def test_app_b_admin_cannot_read_app_a_settings(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    a, b = provision(), provision()
    hb = bearer(await admin_token(client, settings, b))
    r = await client.get(f"/apps/{a.app_id}/admin/v1/settings", headers=hb)
    assert r.status_code == 401
    assert "etag" not in r.headers
