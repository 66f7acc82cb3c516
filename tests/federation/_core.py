"""What fed-core's tests share: providers made as the CLI makes them, a driver
for begin/callback/confirm, a small fault OpenID Provider whose answers a test
sets (tampered or foreign ID tokens, split email claims, errors), and a TCP
server that accepts and never answers.

The fault OP is ours on purpose: it lies in ways a real OP never would. The
happy paths and the protocol checks that a real OP can exercise run against
panva's oidc-provider (``upstream_op``) and a second oneauth app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
from jwcrypto import jwk, jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from oidc._support import LiveServer
from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.federation import providers, upstream
from oneauth.flows import engine
from oneauth.identity.users import User
from oneauth.secretbox import SecretBox
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.strategies import upstream as strategy

META = audit.RequestMeta(request_id="fed-core-test", ip_hash="test-ip")


def make_provider(
    settings: Settings,
    app: AppRecord,
    *,
    issuer: str,
    client_id: str,
    secret: str,
    kind: providers.Kind = "oidc",
    **spec: Any,
) -> providers.Provider:
    """A provider in ``app``, created through the CLI's door (sync, audited)."""
    box = SecretBox.from_config(settings.master_key)
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        return providers.create(
            conn,
            box,
            app.app_id,
            providers.ProviderSpec(
                kind=kind,
                name=spec.pop("name", "Upstream"),
                client_id=client_id,
                issuer=issuer,
                **spec,
            ),
            secret,
            allow_http=True,
        )


def callback_url(settings: Settings, app: AppRecord, provider_id: str) -> str:
    return providers.callback_url(settings.issuer_for(app.app_id), provider_id)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


@dataclass
class Browser:
    """One browser's flow binding (the hosted pages keep its nonce in a cookie)."""

    nonce: str = field(default_factory=engine.new_browser_nonce)

    @property
    def binding(self) -> str:
        return engine.browser_binding(self.nonce)


async def begin(
    services: Services, app: AppRecord, provider_id: str, browser: Browser | None = None
) -> tuple[strategy.Started, Browser]:
    browser = browser or Browser()
    flow = engine.transient(kind="login", binding=browser.binding)
    started = await strategy.begin(services, app, flow, provider_id, meta=META)
    return started, browser


def finisher(services: Services, app: AppRecord) -> strategy.Finish[Any]:
    """engine.complete for a first-party API caller (tokens, or Pending)."""

    async def finish(
        conn: asyncpg.Connection, flow: engine.Flow, user: User, token: str
    ) -> engine.Issued | engine.Pending:
        return await engine.complete(
            services, app, conn, flow, meta=META, method="federation", flow_token=token, user=user
        )

    return finish


async def callback(
    services: Services,
    app: AppRecord,
    provider_id: str,
    params: dict[str, str],
    browser: Browser | None,
) -> Any:
    return await strategy.callback(
        services,
        app,
        provider_id,
        params,
        binding=browser.binding if browser else None,
        meta=META,
        finish=finisher(services, app),
    )


async def fetch(services: Services, app: AppRecord, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with services.router.enter(app) as conn:
        return list(await conn.fetch(sql, *args))


async def count(services: Services, app: AppRecord, table: str) -> int:
    rows = await fetch(services, app, f"SELECT count(*) AS n FROM {table}")
    return int(rows[0]["n"])


async def counts(services: Services, app: AppRecord) -> dict[str, int]:
    """What a refusal must not create."""
    names = ("users", "user_identities", "sessions", "federation_pending_links")
    return {name: await count(services, app, name) for name in names}


def first_party_client(settings: Settings, app: AppRecord) -> None:
    """A first-party client, so engine.complete can issue API tokens."""
    from oidc._support import register

    register(settings, app, first_party=True, name="First party")


# --- a fault OpenID Provider ----------------------------------------------------------


@dataclass
class Plan:
    """How the fault OP answers one client's token and userinfo requests."""

    sub: str = field(default_factory=lambda: f"f-{secrets.token_hex(5)}")
    id_claims: dict[str, Any] = field(default_factory=dict)  # added to / override defaults
    drop_claims: tuple[str, ...] = ()
    userinfo: dict[str, Any] | None = None  # None: {"sub": sub}
    token_mode: str = "ok"  # ok | tamper | alg_none | other_key | error | not_json
    nonce_override: str | None = None
    kid: str = "fault-1"


class FaultOP:
    """A tiny OP: discovery, JWKS, authorize (straight back), token, userinfo."""

    def __init__(self) -> None:
        self.key = jwk.JWK.generate(kty="RSA", size=2048, kid="fault-1", use="sig", alg="RS256")
        self.other_key = jwk.JWK.generate(kty="RSA", size=2048, kid="fault-1", alg="RS256")
        self.plans: dict[str, Plan] = {}
        self.secrets: dict[str, str] = {}
        self.codes: dict[str, dict[str, str]] = {}
        self.server: LiveServer | None = None
        self.issuer = ""
        self.token_calls = 0
        self.jwks_calls = 0

    def client(self, plan: Plan | None = None) -> tuple[str, str]:
        client_id, secret = f"fc-{secrets.token_hex(6)}", secrets.token_urlsafe(24)
        self.plans[client_id] = plan or Plan()
        self.secrets[client_id] = secret
        return client_id, secret

    def start(self) -> FaultOP:
        def make(base_url: str) -> Starlette:
            self.issuer = base_url
            return Starlette(
                routes=[
                    Route("/.well-known/openid-configuration", self._discovery),
                    Route("/jwks", self._jwks),
                    Route("/authorize", self._authorize),
                    Route("/token", self._token, methods=["POST"]),
                    Route("/userinfo", self._userinfo),
                ]
            )

        self.server = LiveServer(make).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "authorization_response_iss_parameter_supported": True,
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_calls += 1
        return JSONResponse({"keys": [self.key.export_public(as_dict=True)]})

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        code = secrets.token_urlsafe(16)
        self.codes[code] = params
        back = {"code": code, "state": params.get("state", ""), "iss": self.issuer}
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(back)}", 302)

    def _id_token(self, client_id: str, plan: Plan, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": plan.sub,
            "aud": client_id,
            "exp": now + 300,
            "iat": now,
            "nonce": plan.nonce_override or nonce,
            "email": f"{plan.sub}@fault.example",
            "email_verified": True,
        }
        claims.update(plan.id_claims)
        for name in plan.drop_claims:
            claims.pop(name, None)
        if plan.token_mode == "alg_none":
            header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
            body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            return f"{header}.{body}."
        key = self.other_key if plan.token_mode == "other_key" else self.key
        token = jwt.JWT(header={"alg": "RS256", "kid": plan.kid}, claims=claims)
        token.make_signed_token(key)
        value = str(token.serialize())
        if plan.token_mode == "tamper":
            head, body, sig = value.split(".")
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            data["sub"] = "someone-else"
            body = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
            value = f"{head}.{body}.{sig}"
        return value

    async def _token(self, request: Request) -> Response:
        self.token_calls += 1
        form = dict(await request.form())
        auth = request.headers.get("authorization", "")
        client_id = secret = ""
        if auth.startswith("Basic "):
            from urllib.parse import unquote

            raw = base64.b64decode(auth[6:]).decode()
            client_id, _, secret = raw.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        if self.secrets.get(client_id) != secret:
            return JSONResponse({"error": "invalid_client"}, 401)
        issued = self.codes.pop(str(form.get("code")), None)
        if issued is None or issued.get("client_id") != client_id:
            return JSONResponse({"error": "invalid_grant"}, 400)
        verifier = str(form.get("code_verifier", ""))
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        if digest.decode() != issued.get("code_challenge"):
            return JSONResponse({"error": "invalid_grant", "error_description": "pkce"}, 400)
        plan = self.plans[client_id]
        if plan.token_mode == "error":
            return JSONResponse({"error": "invalid_grant"}, 400)
        if plan.token_mode == "not_json":
            return Response("<html>oops</html>", 200, media_type="text/html")
        access = f"at-{client_id}-{secrets.token_hex(8)}"
        self.codes[access] = {"client_id": client_id}
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self._id_token(client_id, plan, issued.get("nonce")),
            }
        )

    async def _userinfo(self, request: Request) -> Response:
        access = request.headers.get("authorization", "").removeprefix("Bearer ")
        issued = self.codes.get(access)
        if issued is None:
            return JSONResponse({"error": "invalid_token"}, 401)
        plan = self.plans[issued["client_id"]]
        return JSONResponse(plan.userinfo if plan.userinfo is not None else {"sub": plan.sub})

    async def authorize(self, authorize_url: str) -> str:
        """What a browser at the fault OP gets: the redirect back to the callback."""
        import httpx

        async with httpx.AsyncClient() as http:
            response = await http.get(authorize_url)
        assert response.status_code == 302, response.text
        return response.headers["location"]


class Silent:
    """A TCP server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held: list[socket.socket] = []
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def open_connections(self) -> int:
        """Connections the client still holds open: what it sent is drained, and a
        peer that hung up reads as EOF."""
        alive = 0
        for conn in self.held:
            conn.setblocking(False)
            try:
                while conn.recv(65536):
                    pass  # the request it sent; EOF (b"") ends the loop: closed
            except BlockingIOError:
                alive += 1  # nothing more to read and no EOF: still open
            except OSError:
                pass  # reset: closed
        return alive

    def close(self) -> None:
        self._stop = True
        for conn in self.held:
            conn.close()
        self.sock.close()


async def idle_in_transaction(services: Services) -> int:
    """Backends of the service's pools that sit in an open transaction now."""
    async with services.pool.acquire() as conn:
        value = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
        )
    return int(value or 0)


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def clear_caches() -> None:
    upstream.clear_caches()


def register_at_oneauth(
    settings: Settings, app: AppRecord, redirect_uris: Iterable[str]
) -> tuple[str, str]:
    """A confidential client at a oneauth app acting as the upstream."""
    from oidc._support import register

    client_id, secret = register(
        settings, app, kind="confidential", redirect_uris=tuple(redirect_uris), first_party=True
    )
    assert secret is not None
    return client_id, secret
