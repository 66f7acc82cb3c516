"""Helpers of the admin API tests: admin clients of an app and their tokens."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.settings import Settings


def admin_client(
    settings: Settings, app: AppRecord, scopes: Iterable[str] = APP_ADMIN_SCOPES, name: str = "ops"
) -> tuple[str, str]:
    """A confidential client_credentials client of ``app`` with admin scopes."""
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        client, secret = clients.create(
            conn,
            clients.ClientSpec(
                name=name,
                kind="confidential",
                grant_types=frozenset({"client_credentials"}),
                scopes=frozenset(scopes),
            ),
        )
    assert secret is not None
    return client.client_id, secret


def platform_client(settings: Settings, app: AppRecord, scopes: Iterable[str]) -> tuple[str, str]:
    """A client_credentials client with platform scopes (of an app standing in for
    the platform app)."""
    return admin_client(settings, app, scopes, name="platform")


def update_client(settings: Settings, app: AppRecord, client_id: str, **changes: object) -> None:
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        clients.update(conn, client_id, **changes)


async def token_of(
    http: httpx.AsyncClient, app_id: str, client_id: str, secret: str, scope: str | None = None
) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    r = await http.post(f"/apps/{app_id}/oauth/token", data=data, auth=(client_id, secret))
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert isinstance(token, str)
    return token


async def admin_token(
    http: httpx.AsyncClient,
    settings: Settings,
    app: AppRecord,
    scopes: Iterable[str] = APP_ADMIN_SCOPES,
) -> str:
    cid, secret = admin_client(settings, app, scopes)
    return await token_of(http, app.app_id, cid, secret)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
