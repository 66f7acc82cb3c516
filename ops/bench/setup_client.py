"""The harness's own HTTP client for preparation (users, tokens, probes).

Never used for measuring: wrk does that. Everything goes to 127.0.0.1.
Concurrency is bounded so that preparation cannot trip the service's
argon2 admission limit (HasherBusy, 503).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote_plus

import httpx

T = TypeVar("T")
R = TypeVar("R")
FORM = {"content-type": "application/x-www-form-urlencoded"}


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 section 2.3.1: form-encode id and secret, then HTTP Basic."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


class Reply:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def get(self, key: str) -> Any:
        return self.body.get(key) if isinstance(self.body, dict) else None


class SetupClient:
    def __init__(self, base: str, *, concurrency: int = 16) -> None:
        if not base.startswith("http://127.0.0.1:"):
            raise ValueError("the benchmark only talks to 127.0.0.1")
        self._http = httpx.AsyncClient(
            base_url=base,
            timeout=30,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._sem = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        async with self._sem:
            resp = await self._http.request(method, path, **kwargs)
        try:
            body: Any = resp.json()
        except ValueError:
            body = resp.text
        return Reply(resp.status_code, body)

    async def app_info(self, app: str) -> Reply:
        return await self.call("GET", f"/apps/{app}/v1/app")

    async def signup(self, app: str, email: str, password: str) -> Reply:
        return await self.call(
            "POST", f"/apps/{app}/v1/signup", json={"email": email, "password": password}
        )

    async def login(self, app: str, email: str, password: str) -> Reply:
        return await self.call(
            "POST", f"/apps/{app}/v1/login", json={"email": email, "password": password}
        )

    async def refresh(self, app: str, client_id: str, token: str) -> Reply:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
        return await self.call("POST", f"/apps/{app}/oauth/token", data=form, headers=FORM)

    async def client_credentials(self, app: str, client_id: str, secret: str) -> Reply:
        return await self.call(
            "POST",
            f"/apps/{app}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={**FORM, "authorization": basic_auth(client_id, secret)},
        )

    async def introspect(self, app: str, client_id: str, secret: str, token: str) -> Reply:
        return await self.call(
            "POST",
            f"/apps/{app}/oauth/introspect",
            data={"token": token},
            headers={**FORM, "authorization": basic_auth(client_id, secret)},
        )


async def gather_bounded(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], *, deadline_s: float
) -> list[R]:
    """fn over items concurrently (the client's semaphore bounds it), within a deadline."""
    return await asyncio.wait_for(asyncio.gather(*(fn(item) for item in items)), timeout=deadline_s)


def missing_endpoint(reply: Reply) -> bool:
    """404/405 from routing, as opposed to a 404 from a handler or the app gate.

    oneauth turns a routing 404 into a problem document with code ``not_found``
    (plain Starlette says it in text); the gate says ``app_not_found``.
    """
    if reply.status == 405:
        return True
    code = reply.body.get("code") if isinstance(reply.body, dict) else None
    return reply.status == 404 and code in (None, "not_found")


def first_error(replies: Sequence[Reply]) -> str:
    for r in replies:
        if not r.ok:
            return f"HTTP {r.status}: {str(r.body)[:300]}"
    return ""
