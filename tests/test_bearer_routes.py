"""What the /v1 routes ask of a Bearer token: a user's, of a first-party client,
with a live session (issue 10 items 4 and 6, S3, T4)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from apiclient import PASSWORD, confidential_client, login, signup
from oneauth.apps.models import AppRecord
from oneauth.settings import Settings


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_ended_sessions_access_token_changes_nothing(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    base = f"/apps/{app.app_id}"
    email = "ended@example.com"
    await signup(client, app.app_id, email)
    old = (await login(client, app.app_id, email)).json()["access_token"]
    assert (await client.post(f"{base}/v1/logout", headers=bearer(old))).status_code == 204
    # The JWT has not expired, but its session has: no password change on it.
    changed = await client.post(
        f"{base}/v1/password",
        headers=bearer(old),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase 7"},
    )
    assert changed.status_code == 401, changed.text
    assert changed.json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in changed.headers["www-authenticate"]
    moved = await client.post(
        f"{base}/v1/email/change",
        headers=bearer(old),
        json={"new_email": "elsewhere@example.com", "password": PASSWORD},
    )
    assert moved.status_code == 401
    assert (await client.get(f"{base}/v1/consents", headers=bearer(old))).status_code == 401
    assert (await client.get(f"{base}/v1/me", headers=bearer(old))).status_code == 401
    # Logging out again is harmless (204), and the password is still the old one.
    assert (await client.post(f"{base}/v1/logout", headers=bearer(old))).status_code == 204
    assert (await login(client, app.app_id, email)).status_code == 200
    assert (await login(client, app.app_id, email, "a brand new passphrase 7")).status_code == 401


async def test_client_credentials_tokens_are_refused_by_first_party_routes(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    base = f"/apps/{app.app_id}"
    cid, secret = confidential_client(settings, app)
    issued = await client.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
    )
    token = issued.json()["access_token"]
    for method, path in (
        ("GET", "/v1/me"),
        ("GET", "/v1/consents"),
        ("POST", "/v1/logout"),
        ("POST", "/v1/password"),
    ):
        response = await client.request(
            method,
            f"{base}{path}",
            headers=bearer(token),
            json={"current_password": "x", "new_password": "y"} if path == "/v1/password" else None,
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
