"""What the finishing tests of issue 14 share (form_post, GitHub through the hosted
pages, upstream down, keep_tokens, link proof by a mailed code): an app with one
provider at a rig upstream, driven through the hosted pages by an in-process httpx
client (oneauth at http://testserver), the upstream on loopback."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from federation.rig.faults import FaultyOP
from federation.rig.node_op import RegisteredClient
from oidc._support import RP, challenge_of, exchange, jwt_claims, query
from oidc._support import register as register_client
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers
from oneauth.services import Services
from oneauth.settings import Settings

LINK_URL = "https://app.example.com/signed-in"


@dataclass
class Hosted:
    """An app with one upstream provider and a first-party client at ``RP``."""

    app: AppRecord
    provider_id: str
    client_id: str

    @property
    def base(self) -> str:
        return f"/apps/{self.app.app_id}"

    @property
    def issuer(self) -> str:
        return f"http://testserver/apps/{self.app.app_id}"

    @property
    def callback(self) -> str:
        return f"{self.issuer}/federation/{self.provider_id}/callback"

    @property
    def cookie(self) -> str:
        return f"oneauth_fed_{self.app.app_id}"


def hosted_app(
    settings: Settings,
    services: Services,
    provision: Callable[..., AppRecord],
    *,
    kind: providers.Kind,
    issuer: str,
    register: Callable[[str], tuple[str, dict[str, Any]]],
    app_settings: dict[str, Any] | None = None,
    **spec: Any,
) -> Hosted:
    """Provision an app and its provider; ``register(callback_url)`` registers the
    app's client at the upstream with exactly that callback: (its secret, the
    provider's changes: client_id, auth_params ...)."""
    app = provision(app_settings={"link_urls": [LINK_URL], **(app_settings or {})})
    client_id, _ = register_client(settings, app, first_party=True, redirect_uris=(RP,))
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        made = providers.create(
            conn,
            services.box,
            app.app_id,
            providers.ProviderSpec(
                kind=kind,
                name=spec.pop("name", "Upstream"),
                client_id="pending",
                issuer=issuer,
                **spec,
            ),
            "pending",
            allow_http=True,
        )
        callback = providers.callback_url(settings.issuer_for(app.app_id), made.id)
        secret, changes = register(callback)
        providers.update(
            conn, services.box, app.app_id, made.id, secret=secret, allow_http=True, **changes
        )
    return Hosted(app, made.id, client_id)


def authorize_query(hosted: Hosted, verifier: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": hosted.client_id,
        "redirect_uri": RP,
        "scope": "openid email",
        "state": "st-fin",
        "nonce": "n-fin",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
    }


def button(html: str, hosted: Hosted) -> str:
    """The provider's button (a link to its start) on the hosted login page."""
    marker = f'href="{hosted.issuer}/federation/{hosted.provider_id}/start?'
    at = html.index(marker) + len('href="')
    return html[at : html.index('"', at)].replace("&amp;", "&")


async def login_page_start(client: httpx.AsyncClient, hosted: Hosted) -> tuple[str, str]:
    """The hosted login page of the client's authorization request: (the provider
    button's URL, the PKCE verifier)."""
    verifier = secrets.token_urlsafe(48)
    page = await client.get(
        f"{hosted.base}/oauth/authorize", params=authorize_query(hosted, verifier)
    )
    assert page.status_code == 200, page.text
    return button(page.text, hosted), verifier


async def to_upstream(client: httpx.AsyncClient, start: str) -> str:
    response = await client.get(start)
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


async def follow_to_client(client: httpx.AsyncClient, response: httpx.Response) -> str:
    for _ in range(5):
        assert response.status_code in (302, 303), response.text
        location = str(response.headers["location"])
        if not location.startswith("http://testserver/"):
            return location
        response = await client.get(location)
    raise AssertionError("no redirect to the client")


async def id_token_at_client(
    client: httpx.AsyncClient, hosted: Hosted, done: str, verifier: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The client's code exchanged: (the token response, the ID token's claims)."""
    assert done.startswith(RP), done
    tokens = await exchange(
        client, hosted.app.app_id, hosted.client_id, query(done)["code"], verifier
    )
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    return body, jwt_claims(body["id_token"])[1]


def other_browser(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client on the same in-process service with no cookies: another browser, or
    this browser's cross-site POST (SameSite=Lax cookies stay home)."""
    return httpx.AsyncClient(transport=client._transport, base_url="http://testserver")


async def rows(services: Services, app: AppRecord, sql: str, *args: Any) -> list[Any]:
    async with services.router.enter(app) as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


async def count(services: Services, app: AppRecord, table: str) -> int:
    async with services.router.enter(app) as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def nothing_created(services: Services, app: AppRecord) -> dict[str, int]:
    names = ("users", "user_identities", "sessions", "federation_pending_links")
    return {name: await count(services, app, name) for name in names}


Register = Callable[[str], tuple[str, dict[str, Any]]]


def apple_register(op: FaultyOP, keep: dict[str, Any]) -> Register:
    """Register an Apple-style client at ``op``; the secret oneauth gets is the
    private key's PEM (its team and key ids in auth_params); ``keep`` receives the
    client and its Apple details."""

    def register(callback: str) -> tuple[str, dict[str, Any]]:
        client, apple = op.register_apple_client([callback])
        keep.update(client=client, apple=apple)
        params = {"team_id": apple.team_id, "key_id": apple.key_id}
        return apple.private_pem, {"client_id": client.client_id, "auth_params": params}

    return register


def secret_register(
    register_client_at: Callable[[list[str]], RegisteredClient], keep: dict[str, Any]
) -> Register:
    """Register a client with a shared secret (``register_client_at([callback])``)."""

    def register(callback: str) -> tuple[str, dict[str, Any]]:
        client = register_client_at([callback])
        keep["client"] = client
        assert client.client_secret is not None
        return client.client_secret, {"client_id": client.client_id}

    return register
