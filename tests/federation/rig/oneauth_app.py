"""A second oneauth app as the upstream OpenID Provider: app U on the live service
(the real server under uvicorn), a confidential client registered there with the
downstream's exact redirect URIs, users with a password, and sign-in through U's
hosted login and consent pages with httpx."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import httpx

from oidc._support import PASSWORD, register
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.settings import Settings

from .interaction import drive, drive_sync
from .node_op import RegisteredClient


class OneauthUpstream:
    """App U at ``{base}/apps/{app_id}``: its ``issuer`` is that URL (OIDC discovery there)."""

    def __init__(self, base_url: str, settings: Settings, app: AppRecord) -> None:
        self.base_url = base_url
        self.settings = settings
        self.app = app
        self.issuer = f"{base_url}/apps/{app.app_id}"
        self.http = httpx.Client(timeout=10.0)

    def close(self) -> None:
        self.http.close()

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/oauth/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def jwks_uri(self) -> str:
        return str(
            self.http.get(f"{self.issuer}/.well-known/openid-configuration").json()["jwks_uri"]
        )

    def register_client(
        self,
        redirect_uris: Iterable[str],
        *,
        auth_method: str = "client_secret_basic",
        name: str = "Downstream app (federation)",
    ) -> RegisteredClient:
        """A confidential third-party client of U (so U shows its consent page)."""
        uris = tuple(redirect_uris)
        client_id, secret = register(
            self.settings,
            self.app,
            kind="confidential",
            redirect_uris=uris,
            auth_method=auth_method,
            name=name,
            grants=("authorization_code",),
        )
        return RegisteredClient(
            client_id, secret, uris, {"token_endpoint_auth_method": auth_method}
        )

    def update_redirect_uris(
        self, client: RegisteredClient, redirect_uris: Iterable[str]
    ) -> RegisteredClient:
        uris = tuple(redirect_uris)
        with (
            ops.connect(self.settings.operator_url) as conn,
            conn.transaction(),
            ops.app_context(conn, self.app.names),
        ):
            clients.update(conn, client.client_id, redirect_uris=uris)
        return replace(client, redirect_uris=uris)

    def add_user(self, email: str, *, verified: bool = True, password: str = PASSWORD) -> str:
        """Sign a user up at U (through its API); ``verified`` marks the address proven,
        as the mailed link would. Returns U's ``sub`` of the user."""
        response = self.http.post(
            f"{self.issuer}/v1/signup", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        sub = str(response.json()["user"]["id"])
        self.http.cookies.clear()
        if verified:
            with (
                ops.connect(self.settings.operator_url) as conn,
                conn.transaction(),
                ops.app_context(conn, self.app.names),
            ):
                conn.execute(
                    "UPDATE users SET email_verified = true, updated_at = now() WHERE id = %s",
                    (sub,),
                )
        return sub

    def _fill(self, email: str, password: str, consent: str) -> dict[str, str]:
        return {"email": email, "password": password, "decision": consent}

    async def sign_in(
        self,
        http: httpx.AsyncClient,
        authorize_url: str,
        email: str,
        *,
        password: str = PASSWORD,
        consent: str = "allow",
    ) -> str:
        """Through U's hosted login (and consent) pages; returns U's redirect back."""
        return await drive(http, authorize_url, self.issuer, self._fill(email, password, consent))

    def sign_in_sync(
        self,
        http: httpx.Client,
        authorize_url: str,
        email: str,
        *,
        password: str = PASSWORD,
        consent: str = "allow",
    ) -> str:
        return drive_sync(http, authorize_url, self.issuer, self._fill(email, password, consent))
