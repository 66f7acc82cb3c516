"""Helpers of the console tests: operators, grants and a signed-in console client."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import httpx

from oidc._support import PASSWORD, form
from oneauth.db import ops
from oneauth.identity.passwords import PasswordHasher
from oneauth.platform import operators
from oneauth.settings import Settings

_HASHER: PasswordHasher | None = None


def _hash(password: str) -> str:
    global _HASHER
    if _HASHER is None:
        _HASHER = PasswordHasher(max_workers=1)
    return _HASHER.hash_sync(password)


def operator(settings: Settings, *grants: tuple[str | None, str], email: str | None = None) -> str:
    """A platform operator with these (app_id or None for all, role) grants; their email."""
    email = email or f"op-{secrets.token_hex(4)}@example.com"
    with ops.connect(settings.operator_url) as conn:
        operators.create_operator(conn, email, _hash(PASSWORD))
        for app_id, role in grants:
            operators.grant(conn, email, app_id, role)
    return email


def revoke(settings: Settings, email: str, app_id: str | None) -> None:
    with ops.connect(settings.operator_url) as conn:
        assert operators.revoke(conn, email, app_id)


async def sign_in(http: httpx.AsyncClient, email: str, next_url: str = "/console/") -> None:
    """The console's sign-in through the platform's hosted login page (no JavaScript)."""
    response = await http.get("/console/login", params={"next": next_url})
    assert response.status_code == 302, response.text
    for _ in range(6):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if urlsplit(location).path == "/console/callback":
                response = await http.get(location)
                assert response.status_code == 302, response.text
                assert response.headers["location"] == next_url
                return
            response = await http.get(location)
            continue
        assert response.status_code == 200, response.text
        page = form(response.text)
        data = dict(page.fields)
        data.update(email=email, password=PASSWORD)
        response = await http.post(page.action, data=data)
    raise AssertionError("the sign-in did not come back to the console")


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
