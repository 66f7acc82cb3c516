"""Small helpers the API tests share: signing up, logging in, registering clients."""

from __future__ import annotations

from typing import Any

import httpx

from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.settings import Settings

PASSWORD = "violet-Harbor-lantern-42"


async def signup(
    http: httpx.AsyncClient, app_id: str, email: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await http.post(
        f"/apps/{app_id}/v1/signup", json={"email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    http: httpx.AsyncClient, app_id: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await http.post(f"/apps/{app_id}/v1/login", json={"email": email, "password": password})


async def default_client_id(http: httpx.AsyncClient, app_id: str) -> str:
    response = await http.get(f"/apps/{app_id}/v1/app")
    assert response.status_code == 200, response.text
    value = response.json()["default_client_id"]
    assert isinstance(value, str)
    return value


async def refresh(
    http: httpx.AsyncClient, app_id: str, client_id: str, token: str, **form: str
) -> httpx.Response:
    return await http.post(
        f"/apps/{app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            **form,
        },
    )


async def age_refresh_use(services: Services, app_id: str, token: str, seconds: float) -> None:
    """Move a used refresh token's rotation ``seconds`` into the past (past the
    grace window in which a repeat is a benign race, not a replay)."""
    async with services.router.app(app_id) as conn:
        moved = await conn.execute(
            "UPDATE refresh_tokens SET used_at = used_at - make_interval(secs => $2)"
            " WHERE token_hash = $1 AND used_at IS NOT NULL",
            sessions.hash_token(token),
            seconds,
        )
    assert moved == "UPDATE 1", moved


def confidential_client(
    settings: Settings,
    app: AppRecord,
    *,
    grants: frozenset[str] = frozenset({"client_credentials"}),
    scopes: frozenset[str] = frozenset({"orders:read", "orders:write"}),
) -> tuple[str, str]:
    """Register a confidential client in the app; returns (client_id, secret)."""
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        client, secret = clients.create(
            conn,
            clients.ClientSpec(
                name="Service", kind="confidential", grant_types=grants, scopes=scopes
            ),
        )
    assert secret is not None
    return client.client_id, secret
