"""B4: EVERY admin route (whoever adds it) declares one scope, refuses a token
without it (403 insufficient_scope) and refuses another app's admin token (401).

Generic over the route table: a route added to ``oneauth.admin.routes()`` later is
walked too, with its path parameters filled with placeholders (the guard answers
before any lookup)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from starlette.applications import Starlette

from admin._support import admin_client, bearer, token_of
from oneauth.admin.scopes import APP_ADMIN_SCOPES, PLATFORM_SCOPES
from oneauth.apps.models import AppRecord
from oneauth.http.contract import declared
from oneauth.http.openapi import document, walk
from oneauth.settings import Settings


def admin_routes(service: Starlette) -> list[tuple[str, str, str]]:
    """(method, path template, scope) of every route declared admin=True."""
    found = []
    for method, path, route in walk(service.routes):
        op = declared(route.endpoint)
        if op is not None and op.admin:
            assert op.admin_scope, f"{method} {path} declares no scope"
            found.append((method, path, op.admin_scope))
    return found


def concrete(path: str, app: AppRecord) -> str:
    path = path.replace("{app_id}", app.app_id)
    return re.sub(r"{(\w+)(?::\w+)?}", "00000000-0000-4000-8000-000000000000", path)


def test_every_admin_route_is_documented_with_its_scope(service: Starlette) -> None:
    routes = admin_routes(service)
    assert len(routes) >= 10  # the users routes at least
    doc = document(service.routes)
    for method, path, scope in routes:
        op = doc["paths"][path][method.lower()]
        assert op["security"] == [{"adminToken": [scope]}], (method, path)
        assert op["tags"] in (["admin"], ["platform"]), (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        if path.startswith("/apps/{app_id}/"):
            assert scope in APP_ADMIN_SCOPES, (method, path)
            assert "/admin/v1/" in path, (method, path)
        else:
            assert scope in PLATFORM_SCOPES, (method, path)


async def test_every_app_admin_route_refuses_a_token_without_its_scope_and_other_apps(
    service: Starlette,
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    routes = [r for r in admin_routes(service) if r[1].startswith("/apps/{app_id}/")]
    # One client per scope, holding every admin scope but that one.
    lacking: dict[str, str] = {}
    for scope in sorted({s for _, _, s in routes}):
        cid, secret = admin_client(settings, a, APP_ADMIN_SCOPES - {scope}, name=f"no {scope}")
        lacking[scope] = await token_of(client, a.app_id, cid, secret)
    cid, secret = admin_client(settings, b, APP_ADMIN_SCOPES)
    token_b = await token_of(client, b.app_id, cid, secret)
    for method, path, scope in routes:
        url = concrete(path, a)
        r = await client.request(method, url, headers=bearer(lacking[scope]), json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["code"] == "insufficient_scope"
        assert f'scope="{scope}"' in r.headers["www-authenticate"], (method, path)
        r = await client.request(method, url, headers=bearer(token_b), json={})
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["code"] == "invalid_token"
        r = await client.request(method, url, json={})
        assert r.status_code == 401, (method, path)
