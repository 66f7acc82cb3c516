"""The walk of ``tests/test_response_models.py`` through the admin API's directory,
clients, providers, keys and settings routes: every JSON success answer once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httpx

from admin._support import admin_token
from apiclient import signup
from oneauth.admin.app_api import settings as settings_api
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.platform import runner
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
        sent = {**headers, **kwargs.pop("headers", {})}
        response = await http.request(method, url, headers=sent, **kwargs)
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
    await walk_settings(call, http, headers, settings, app)


async def walk_settings(
    call: Callable[..., Any],
    http: httpx.AsyncClient,
    headers: dict[str, str],
    settings: Settings,
    app: AppRecord,
) -> None:
    """GET, then a PATCH no runner finishes in time (202, the job's GET), then one a
    runner finishes (200)."""
    url = f"/apps/{app.app_id}/admin/v1/settings"
    await call("GET", "/settings", 200)
    tag = (await http.get(url, headers=headers)).headers["etag"]
    wait, settings_api.WAIT_SECONDS = settings_api.WAIT_SECONDS, 0.2
    try:
        job = await call(
            "PATCH",
            "/settings",
            202,
            json={"set": {"passwordless": True}},
            headers={"if-match": tag},
        )
    finally:
        settings_api.WAIT_SECONDS = wait
    with ops.connect(settings.operator_url) as conn:
        runner.drain(conn, settings)
    await call("GET", "/settings/jobs/{job_id}", 200, names={"job_id": job["job_id"]})
    tag = (await http.get(url, headers=headers)).headers["etag"]
    started = runner.RunnerThread(settings, poll=0.5, name="walk-runner").start()
    try:
        await call(
            "PATCH",
            "/settings",
            200,
            json={"unset": ["passwordless"]},
            headers={"if-match": tag},
        )
    finally:
        started.stop()
