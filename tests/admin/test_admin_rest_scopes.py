"""B4: every directory, clients, providers, keys and settings route of the app admin
API takes a token with its scope, refuses one without it (403) and refuses another
app's admin token (401), before any handler runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from admin._support import admin_token, bearer
from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps.models import AppRecord
from oneauth.settings import Settings

ORG = "org_AAAAAAAAAAAAAAAAAAAAAA"
USER = "00000000-0000-4000-8000-000000000000"
IDP = "idp_AAAAAAAAAAAAAAAAAAAAAA"
CL = "cl_AAAAAAAAAAAAAAAAAAAAAA"

# (method, path under /admin/v1, scope, JSON body)
ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/roles", "admin:roles:read", None),
    ("POST", "/roles", "admin:roles:write", {"name": "scope-probe"}),
    ("GET", "/roles/nope", "admin:roles:read", None),
    ("PATCH", "/roles/nope", "admin:roles:write", {"description": "x"}),
    ("DELETE", "/roles/nope", "admin:roles:write", None),
    ("GET", "/permissions", "admin:roles:read", None),
    ("POST", "/permissions", "admin:roles:write", {"name": "probe:read"}),
    ("DELETE", "/permissions/nope", "admin:roles:write", None),
    ("POST", f"/users/{USER}/roles/nope", "admin:roles:write", None),
    ("DELETE", f"/users/{USER}/roles/nope", "admin:roles:write", None),
    ("GET", "/orgs", "admin:orgs:read", None),
    ("POST", "/orgs", "admin:orgs:write", {"name": "Probe"}),
    ("GET", f"/orgs/{ORG}", "admin:orgs:read", None),
    ("PATCH", f"/orgs/{ORG}", "admin:orgs:write", {"name": "x"}),
    ("DELETE", f"/orgs/{ORG}", "admin:orgs:write", None),
    ("POST", f"/orgs/{ORG}/suspend", "admin:orgs:write", None),
    ("POST", f"/orgs/{ORG}/resume", "admin:orgs:write", None),
    ("GET", f"/orgs/{ORG}/members", "admin:orgs:read", None),
    ("POST", f"/orgs/{ORG}/members", "admin:orgs:write", {"user_id": USER}),
    ("DELETE", f"/orgs/{ORG}/members/{USER}", "admin:orgs:write", None),
    ("GET", f"/orgs/{ORG}/invitations", "admin:orgs:read", None),
    ("POST", f"/orgs/{ORG}/invitations", "admin:orgs:write", {"email": "a@example.com"}),
    ("DELETE", f"/orgs/{ORG}/invitations/{USER}", "admin:orgs:write", None),
    ("GET", "/clients", "admin:clients:read", None),
    (
        "POST",
        "/clients",
        "admin:clients:write",
        {"name": "probe", "redirect_uris": ["https://a.example/cb"]},
    ),
    ("GET", f"/clients/{CL}", "admin:clients:read", None),
    ("PATCH", f"/clients/{CL}", "admin:clients:write", {"name": "x"}),
    ("POST", f"/clients/{CL}/disable", "admin:clients:write", None),
    ("POST", f"/clients/{CL}/secrets", "admin:clients:write", {}),
    ("GET", "/providers", "admin:providers:read", None),
    (
        "POST",
        "/providers",
        "admin:providers:write",
        {"kind": "google", "name": "G", "client_id": "c", "client_secret": "s"},
    ),
    ("GET", f"/providers/{IDP}", "admin:providers:read", None),
    ("PATCH", f"/providers/{IDP}", "admin:providers:write", {"name": "x"}),
    ("DELETE", f"/providers/{IDP}", "admin:providers:write", None),
    ("GET", "/keys", "admin:keys:read", None),
    ("POST", "/keys/rotate", "admin:keys:write", {"force": True}),
    ("GET", "/settings", "admin:settings:read", None),
    # Past the guard without If-Match: 428 (no job is queued).
    ("PATCH", "/settings", "admin:settings:write", {"set": {"passwordless": True}}),
    ("GET", "/settings/jobs/00000000-0000-4000-8000-000000000000", "admin:settings:read", None),
]


async def _call(
    http: httpx.AsyncClient, app: AppRecord, method: str, path: str, body: Any, token: str
) -> httpx.Response:
    return await http.request(
        method, f"/apps/{app.app_id}/admin/v1{path}", json=body, headers=bearer(token)
    )


@pytest.fixture
async def apps(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord], settings: Settings
) -> dict[str, Any]:
    a, b = provision(), provision()
    everything_but = {
        scope: await admin_token(client, settings, a, APP_ADMIN_SCOPES - {scope})
        for scope in sorted({r[2] for r in ROUTES})
    }
    return {"a": a, "b_token": await admin_token(client, settings, b), "but": everything_but}


async def test_every_route_needs_its_scope_and_this_apps_token(
    client: httpx.AsyncClient, settings: Settings, apps: dict[str, Any]
) -> None:
    a = apps["a"]
    for method, path, scope, body in ROUTES:
        # Every other admin scope of the app, but not this one: 403, naming the scope.
        r = await _call(client, a, method, path, body, apps["but"][scope])
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["code"] == "insufficient_scope"
        assert f'scope="{scope}"' in r.headers["www-authenticate"]
        # App B's admin token with every scope: 401 at A.
        r = await _call(client, a, method, path, body, apps["b_token"])
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["code"] == "invalid_token"


async def test_every_route_takes_a_token_with_only_its_scope(
    client: httpx.AsyncClient, settings: Settings, apps: dict[str, Any]
) -> None:
    a = apps["a"]
    tokens: dict[str, str] = {}
    for method, path, scope, body in ROUTES:
        if scope not in tokens:
            tokens[scope] = await admin_token(client, settings, a, {scope})
        r = await _call(client, a, method, path, body, tokens[scope])
        # Past the guard: an answer of the route itself (200, 201, 204, or 404 for the
        # made-up ids), never a refusal of the token, never a 5xx.
        assert r.status_code not in (401, 403), (method, path, r.text)
        assert r.status_code < 500, (method, path, r.text)
