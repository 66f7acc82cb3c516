"""The console's only way to read or change an app: the app's admin API (issue 15).

For app A the console mints an app-A admin token for the signed-in operator
(:func:`oneauth.admin.delegation.mint`: five minutes, from A's own issuer,
``client_id`` ``oneauth-console``, the scopes the operator's grant allows, an
``act`` claim naming the operator) and calls ``/apps/A/admin/v1/...`` with it.
So the console can do nothing the API would refuse: the guard re-checks the
token, the scope and the grant row on every call, and audits the change with the
operator as the actor.

Transport: ``httpx.ASGITransport`` on the running Starlette app, not a socket to
the public URL. The request goes through exactly the same middleware, app gate,
guard and views as a network request (it is the same ASGI callable), but needs
no route from the service back to its own public address (a load balancer, TLS
termination, a container's name) and costs no connection or TLS handshake per
call. The operator's address is passed on as the ASGI client address, so the
app's audit rows and rate limits see the operator, not 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request

from oneauth.admin import delegation
from oneauth.admin.scopes import scopes_for_role
from oneauth.apps.models import AppRecord
from oneauth.console.grants import PickerApp
from oneauth.console.session import ConsoleSession
from oneauth.services import Services


class AdminApi:
    """Calls of one page to one app's admin API, as one operator."""

    def __init__(
        self,
        request: Request,
        services: Services,
        app: AppRecord,
        grant: PickerApp,
        session: ConsoleSession,
    ) -> None:
        self.request = request
        self.services = services
        self.app = app
        self.grant = grant
        self.session = session
        self._token: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return scopes_for_role(self.grant.role)

    async def _bearer(self) -> str:
        if self._token is None:
            minted = await delegation.mint(
                self.services,
                self.app,
                self.session.sub,
                self.session.operator_email,
                self.scopes,
            )
            self._token = minted.access_token
        return self._token

    def _client(self) -> httpx.AsyncClient:
        parts = urlsplit(self.services.settings.public_url)
        peer = self.request.client
        transport = httpx.ASGITransport(
            app=self.request.app,
            client=(peer.host, peer.port) if peer else ("127.0.0.1", 0),
        )
        return httpx.AsyncClient(
            transport=transport, base_url=f"{parts.scheme}://{parts.netloc}", timeout=30.0
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``method /apps/<app>/admin/v1<path>``; the answer as the API gave it."""
        sent = {
            "authorization": f"Bearer {await self._bearer()}",
            # The admin API's own CSRF-free bearer calls: same origin by construction.
            "accept": "application/json",
            **(headers or {}),
        }
        url = f"/apps/{self.app.app_id}/admin/v1{path}"
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        async with self._client() as http:
            return await http.request(method, url, params=clean, json=json, headers=sent)

    async def get(self, path: str, **params: str | None) -> httpx.Response:
        return await self.call("GET", path, params={k: v for k, v in params.items() if v})

    async def post(
        self, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return await self.call("POST", path, json=body if body is not None else {}, headers=headers)
