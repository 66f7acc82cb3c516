"""Helpers the OIDC tests share: clients, PKCE, HTML forms, a cookie-keeping browser."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn
from starlette.types import ASGIApp

from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.settings import Settings

PASSWORD = "violet-Harbor-lantern-42"
RP = "https://rp.example.com/cb"
RP_LOGOUT = "https://rp.example.com/bye"


def register(
    settings: Settings,
    app: AppRecord,
    *,
    kind: clients.Kind = "public",
    redirect_uris: Iterable[str] = (RP,),
    post_logout: Iterable[str] = (RP_LOGOUT,),
    grants: Iterable[str] = ("authorization_code", "refresh_token"),
    scopes: Iterable[str] = clients.USER_SCOPES,
    first_party: bool = False,
    auth_method: str | None = None,
    name: str = "Relying Party",
    jwks: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """Register a client in the app; returns (client_id, secret or None)."""
    spec = clients.ClientSpec(
        name=name,
        kind=kind,
        grant_types=frozenset(grants),
        scopes=frozenset(scopes),
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout),
        first_party=first_party,
        auth_method=auth_method,
        jwks=jwks,
    )
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        client, secret = clients.create(conn, spec)
    return client.client_id, secret


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_of(verifier)


def jwt_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    def part(segment: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        )
        return value

    header, payload, _ = token.split(".")
    return part(header), part(payload)


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms(html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form(html: str) -> Form:
    found = forms(html)
    assert len(found) == 1, html
    return found[0]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize_params(
    client_id: str,
    challenge: str | None,
    *,
    redirect_uri: str = RP,
    scope: str = "openid email profile",
    state: str | None = "st-123",
    nonce: str | None = "n-456",
    **extra: str,
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if state is not None:
        params["state"] = state
    if nonce is not None:
        params["nonce"] = nonce
    params.update(extra)
    return params


@dataclass
class Flow:
    """The end of a browser's trip through authorize: the redirect to the client."""

    response: httpx.Response
    verifier: str
    params: dict[str, str]

    @property
    def location(self) -> str:
        return self.response.headers["location"]

    @property
    def result(self) -> dict[str, str]:
        return query(self.location)

    @property
    def code(self) -> str:
        return self.result["code"]


async def sign_in(
    http: httpx.AsyncClient,
    app_id: str,
    client_id: str,
    email: str,
    *,
    password: str = PASSWORD,
    consent: str | None = "allow",
    verifier: str | None = None,
    state: str | None = "st-123",
    nonce: str | None = "n-456",
    **params: str,
) -> Flow:
    """Drive authorize -> login page -> (consent page) -> redirect to the client."""
    verifier = verifier or secrets.token_urlsafe(48)
    wanted = authorize_params(client_id, challenge_of(verifier), state=state, nonce=nonce, **params)
    response = await http.get(f"/apps/{app_id}/oauth/authorize", params=wanted)
    for _ in range(4):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if "/oauth/authorize/continue" in location:
                response = await http.get(location)
                continue
            return Flow(response, verifier, wanted)
        assert response.status_code == 200, response.text
        page = form(response.text)
        data = dict(page.fields)
        if "password" in data:
            data.update(email=email, password=password)
        elif consent is not None:
            data["decision"] = consent
        else:
            return Flow(response, verifier, wanted)
        response = await http.post(page.action, data=data)
    raise AssertionError("the flow did not end")


async def exchange(
    http: httpx.AsyncClient,
    app_id: str,
    client_id: str,
    code: str,
    verifier: str | None,
    *,
    redirect_uri: str = RP,
    secret: str | None = None,
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        data["code_verifier"] = verifier
    if secret is None:
        data["client_id"] = client_id
        return await http.post(f"/apps/{app_id}/oauth/token", data=data)
    return await http.post(f"/apps/{app_id}/oauth/token", data=data, auth=(client_id, secret))


async def signup(http: httpx.AsyncClient, app_id: str, email: str) -> str:
    """A user in the app; returns its sub."""
    response = await http.post(
        f"/apps/{app_id}/v1/signup", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    sub: str = response.json()["user"]["id"]
    http.cookies.clear()  # signup must not leave anything behind for the pages
    return sub


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1, ephemeral port, in a thread."""

    def __init__(self, make_app: Any, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://{host}:{self.port}"
        app: ASGIApp = make_app(self.base_url)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http="h11",
            ws="none",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def url(base: str, path: str, params: dict[str, str] | None = None) -> str:
    return f"{base}{path}" + (f"?{urlencode(params)}" if params else "")
