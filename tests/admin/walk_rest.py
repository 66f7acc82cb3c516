"""The walk of ``tests/test_response_models.py`` through the admin API's directory,
clients, providers, keys and settings routes: every JSON success answer once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httpx

from admin._support import admin_token
from apiclient import signup
from oneauth.apps.models import AppRecord
from oneauth.settings import Settings


class Checks(Protocol):
    def check(self, method: str, path: str, response: httpx.Response) -> None: ...


async def walk_admin_rest(
    contract: Checks,
    http: httpx.AsyncClient,
    settings: Settings,
    provision: Callable[..., AppRecord],
) -> None:
    app = provision()
    headers = {"authorization": f"Bearer {await admin_token(http, settings, app)}"}
    base = "/apps/{app_id}/admin/v1"

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        url = (base + path).replace("{app_id}", app.app_id)
        for name, value in kwargs.pop("names", {}).items():
            url = url.replace("{" + name + "}", value)
        response = await http.request(method, url, headers=headers, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        if response.status_code != 204:
            contract.check(method, base + path, response)
        return response.json() if response.content else None

    await call("POST", "/roles", 201, json={"name": "walker", "permissions": ["walk:read"]})
    await call("GET", "/roles", 200)
    await call("GET", "/roles/{name}", 200, names={"name": "walker"})
    await call("PATCH", "/roles/{name}", 200, names={"name": "walker"}, json={"description": "w"})
    await call("POST", "/permissions", 201, json={"name": "walk:write"})
    await call("GET", "/permissions", 200)
    user = (await signup(http, app.app_id, "admin-rest-walk@example.com"))["user"]["id"]
    grant = {"user_id": user, "name": "walker"}
    await call("POST", "/users/{user_id}/roles/{name}", 200, names=grant)
    await call("DELETE", "/users/{user_id}/roles/{name}", 200, names=grant)
    org = await call("POST", "/orgs", 201, json={"name": "Walk Org"})
    o = {"org_id": org["id"]}
    await call("GET", "/orgs", 200)
    await call("GET", "/orgs/{org_id}", 200, names=o)
    await call("PATCH", "/orgs/{org_id}", 200, names=o, json={"mfa_required": True})
    await call("POST", "/orgs/{org_id}/members", 201, names=o, json={"user_id": user})
    await call("GET", "/orgs/{org_id}/members", 200, names=o)
    await call("POST", "/orgs/{org_id}/invitations", 201, names=o, json={"email": "w@example.com"})
    await call("GET", "/orgs/{org_id}/invitations", 200, names=o)
    await call("POST", "/orgs/{org_id}/suspend", 200, names=o)
    await call("POST", "/orgs/{org_id}/resume", 200, names=o)
    await call("DELETE", "/orgs/{org_id}", 200, names=o)
    made = await call(
        "POST",
        "/clients",
        201,
        json={"name": "walk", "confidential": True, "grant_types": ["client_credentials"]},
    )
    c = {"client_id": made["client"]["client_id"]}
    await call("GET", "/clients", 200)
    await call("GET", "/clients/{client_id}", 200, names=c)
    await call("PATCH", "/clients/{client_id}", 200, names=c, json={"name": "walked"})
    await call("POST", "/clients/{client_id}/secrets", 200, names=c, json={})
    await call("POST", "/clients/{client_id}/disable", 200, names=c)
    provider = await call(
        "POST",
        "/providers",
        201,
        json={"kind": "google", "name": "G", "client_id": "walk", "client_secret": "s3cret"},
    )
    p = {"provider_id": provider["id"]}
    await call("GET", "/providers", 200)
    await call("GET", "/providers/{provider_id}", 200, names=p)
    await call("PATCH", "/providers/{provider_id}", 200, names=p, json={"enabled": False})
    await call("GET", "/keys", 200)
    await call("POST", "/keys/rotate", 200, json={"force": True})
    await call("GET", "/settings", 200)
