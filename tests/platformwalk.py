"""The walk of ``tests/test_response_models.py`` through the platform API
(``/admin/v1/apps...``, ``/admin/v1/jobs...``) and the platform's own metadata:
every JSON success answer once, with a platform client's token and a real
operator-role runner executing the jobs."""

from __future__ import annotations

import secrets
from typing import Any, Protocol

import httpx

from oneauth.admin.scopes import PLATFORM_SCOPES
from oneauth.db import ops
from oneauth.platform import bootstrap
from oneauth.platform.runner import RunnerThread
from oneauth.settings import Settings
from platformkit import platform_client, platform_token


class Checks(Protocol):
    def check(self, method: str, path: str, response: httpx.Response) -> None: ...


async def walk_platform(contract: Checks, http: httpx.AsyncClient, settings: Settings) -> None:
    with ops.connect(settings.operator_url) as conn:
        bootstrap.init(conn, settings)
    client_id, secret = platform_client(settings, sorted(PLATFORM_SCOPES), name="walk")
    headers = {"authorization": f"Bearer {await platform_token(http, client_id, secret)}"}
    app_id = f"walk-{secrets.token_hex(4)}"

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        url = path.replace("{app_id}", app_id)
        for name, value in kwargs.pop("names", {}).items():
            url = url.replace("{" + name + "}", value)
        extra = kwargs.pop("headers", {})
        response = await http.request(method, url, headers={**headers, **extra}, **kwargs)
        assert response.status_code == expect, (method, url, response.text)
        contract.check(method, path, response)
        return response

    await call("GET", "/.well-known/oauth-authorization-server/platform", 200)
    runner = RunnerThread(settings, poll=0.5, name="walk-runner").start()
    try:
        wait = {"wait": "10"}
        made = await call(
            "POST",
            "/admin/v1/apps",
            202,
            params=wait,
            json={"app_id": app_id, "display_name": "Walk"},
            headers={"idempotency-key": secrets.token_hex(8)},
        )
        assert made.json()["status"] == "succeeded", made.text
        job = {"job_id": made.json()["job_id"]}
        await call("GET", "/admin/v1/jobs/{job_id}", 200, names=job)
        await call("GET", "/admin/v1/jobs", 200, params={"app_id": app_id})
        await call("GET", "/admin/v1/apps", 200, params={"q": "walk-", "limit": "1"})
        shown = await call("GET", "/admin/v1/apps/{app_id}", 200)
        etag = {"if-match": shown.headers["etag"]}
        await call(
            "PATCH",
            "/admin/v1/apps/{app_id}",
            202,
            params=wait,
            json={"display_name": "Walked"},
            headers=etag,
        )
        await call("POST", "/admin/v1/apps/{app_id}/suspend", 202, params=wait)
        await call("POST", "/admin/v1/apps/{app_id}/resume", 202, params=wait)
        await call("DELETE", "/admin/v1/apps/{app_id}", 202, params=wait)
    finally:
        runner.stop()
