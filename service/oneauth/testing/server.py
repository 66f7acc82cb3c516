"""A throwaway oneauth for a test session: Postgres, the service on a loopback port,
apps, clients, users and their tokens (issue 18, item 2).

The service is the real one (``oneauth.asgi.create_app`` under uvicorn, in a
thread of the test process, on 127.0.0.1 and a free port, its public URL that
address), on a database of its own with the operator and service roles of a
production install (D1). Apps are provisioned as the operator does; everything
inside an app (users, roles, orgs, clients) goes through the app's admin API
with a client-credentials token of an admin client the fixture registers, so a
test sees what a deployment would do, audit rows included.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn
from starlette.types import ASGIApp

from oneauth.admin.scopes import APP_ADMIN_SCOPES
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.settings import Settings
from oneauth.testing import postgres
from oneauth.testing.browser import sign_in_through_pages

__all__ = [
    "Client",
    "Oneauth",
    "OneauthApp",
    "OneauthError",
    "Org",
    "Tokens",
    "User",
    "serve_asgi",
    "start_oneauth",
]

# A loopback redirect URI: never fetched (the helper stops at the redirect), and
# loopback literals may change port (RFC 8252), so tests can reuse it for CLIs.
CALLBACK = "http://127.0.0.1/callback"
# Scopes of the clients the fixture registers for users' sign-ins.
SIGN_IN_SCOPES = (*clients.USER_SCOPES, "organization", "permissions")


class OneauthError(RuntimeError):
    """The throwaway service refused a set-up call; the message has its answer."""


def _claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return value


def new_password() -> str:
    """A password the sign-up policy accepts (long, random, not a common one)."""
    return f"{secrets.token_urlsafe(15)}-Aa7"


@dataclass(frozen=True)
class Tokens:
    """A token response. ``claims`` is the access token's payload, NOT verified (use a
    verifier for that); handy to read what oneauth put in."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str
    id_token: str | None = None
    refresh_token: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def claims(self) -> dict[str, Any]:
        return _claims_of(self.access_token)

    @property
    def id_claims(self) -> dict[str, Any]:
        if self.id_token is None:
            raise OneauthError("this token response has no ID token (ask for scope openid)")
        return _claims_of(self.id_token)

    @property
    def authorization(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for a request to a resource server."""
        return {"Authorization": f"Bearer {self.access_token}"}

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Tokens:
        return cls(
            access_token=body["access_token"],
            token_type=body.get("token_type", "Bearer"),
            expires_in=int(body.get("expires_in", 0)),
            scope=body.get("scope", ""),
            id_token=body.get("id_token"),
            refresh_token=body.get("refresh_token"),
            raw=dict(body),
        )


@dataclass(frozen=True)
class Client:
    """A registered OAuth client; ``client_secret`` is None for a public one."""

    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]

    @property
    def confidential(self) -> bool:
        return self.client_secret is not None


@dataclass(frozen=True)
class Org:
    id: str
    slug: str
    name: str


@dataclass(frozen=True)
class User:
    """A user of one app, with the password it signs in with."""

    id: str
    email: str
    password: str
    app: OneauthApp = field(repr=False, compare=False)
    roles: tuple[str, ...] = ()
    orgs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def sub(self) -> str:
        return self.id

    def sign_in(self, **kwargs: Any) -> Tokens:
        """Tokens for this user through the hosted login page (see OneauthApp.sign_in)."""
        return self.app.sign_in(self, **kwargs)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OneauthApp:
    """One provisioned app of the throwaway service."""

    def __init__(self, server: Oneauth, app_id: str, admin: Client) -> None:
        self.server = server
        self.app_id = app_id
        self.admin_client = admin
        self._admin_token: tuple[str, float] | None = None
        self._sign_in_client: Client | None = None
        self._lock = threading.Lock()
        self._sign_in_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OneauthApp({self.app_id!r}, issuer={self.issuer!r})"

    # -- where things are ----------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer_for(self.app_id)

    @property
    def audience(self) -> str:
        """The ``aud`` of the app's user and client access tokens (its API)."""
        return f"{self.issuer}/api"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/oauth/authorize"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def verifier(self, **kwargs: Any) -> Any:
        """A :class:`oneauth.verifier.Verifier` pinned to this app's issuer and audience."""
        from oneauth.verifier import Verifier

        return Verifier(issuer=self.issuer, audience=self.audience, app_id=self.app_id, **kwargs)

    # -- the admin API -------------------------------------------------------------

    def admin_token(self) -> str:
        """A client-credentials token of the fixture's admin client (cached while valid)."""
        with self._lock:
            if self._admin_token is None or self._admin_token[1] < time.monotonic() + 30:
                tokens = self.client_token(self.admin_client)
                self._admin_token = (tokens.access_token, time.monotonic() + tokens.expires_in)
            return self._admin_token[0]

    def admin(self, method: str, path: str, *, json: Any = None, ok: Iterable[int] = ()) -> Any:
        """Call ``/apps/{app}/admin/v1{path}``; the JSON answer, or OneauthError."""
        response = self.server.http.request(
            method,
            f"{self.issuer}/admin/v1{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.admin_token()}"},
        )
        if response.status_code >= 400 and response.status_code not in set(ok):
            raise OneauthError(
                f"{method} {path} at app {self.app_id}: {response.status_code} {response.text}"
            )
        if not response.content:
            return None
        return response.json()

    # -- clients -------------------------------------------------------------------

    def create_client(
        self,
        name: str = "test client",
        *,
        confidential: bool = False,
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        redirect_uris: Sequence[str] = (CALLBACK,),
        post_logout_redirect_uris: Sequence[str] = (),
        scopes: Sequence[str] = SIGN_IN_SCOPES,
        first_party: bool = True,
        org_id: str | None = None,
    ) -> Client:
        """Register a client. First-party by default (no consent page); pass
        ``first_party=False`` to see consent. A client_credentials-only client
        gets no redirect URIs."""
        if "authorization_code" not in grant_types:
            redirect_uris = ()
        body: dict[str, Any] = {
            "name": name,
            "confidential": confidential,
            "grant_types": list(grant_types),
            "scopes": list(scopes),
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "first_party": first_party,
        }
        if org_id is not None:
            body["org_id"] = org_id
        made = self.admin("POST", "/clients", json=body)
        return Client(
            client_id=made["client"]["client_id"],
            client_secret=made["client_secret"],
            redirect_uris=tuple(redirect_uris),
            scopes=tuple(scopes),
            grant_types=tuple(grant_types),
        )

    def sign_in_client(self) -> Client:
        """The public PKCE client :meth:`sign_in` uses when given none (made once)."""
        # Its own lock, held while the client is made (which takes the token lock):
        # threads signing in at once make one client, not one each.
        with self._sign_in_lock:
            if self._sign_in_client is None:
                self._sign_in_client = self.create_client("oneauth.testing sign-in")
            return self._sign_in_client

    # -- roles, orgs, users --------------------------------------------------------

    def create_role(self, name: str, permissions: Iterable[str] = ()) -> None:
        """An app role bundling ``permissions`` (made if missing; an existing role keeps
        its permissions)."""
        wanted = sorted(set(permissions))
        for permission in wanted:
            self.admin("POST", "/permissions", json={"name": permission}, ok=(409,))
        self.admin("POST", "/roles", json={"name": name, "permissions": wanted}, ok=(409,))

    def create_org(self, name: str, slug: str | None = None) -> Org:
        body: dict[str, Any] = {"name": name}
        if slug is not None:
            body["slug"] = slug
        made = self.admin("POST", "/orgs", json=body)
        return Org(made["id"], made["slug"], made["name"])

    def org(self, slug: str) -> Org:
        """The org with this slug (or id), made (named after the slug) if missing."""
        found = self.admin("GET", f"/orgs/{slug}", ok=(404,))
        if found is None or "id" not in found:
            return self.create_org(slug.replace("-", " ").title(), slug)
        return Org(found["id"], found["slug"], found["name"])

    def add_member(self, org: Org | str, user: User | str, roles: Iterable[str] = ()) -> None:
        org_id = org.id if isinstance(org, Org) else self.org(org).id
        user_id = user.id if isinstance(user, User) else user
        self.admin(
            "POST", f"/orgs/{org_id}/members", json={"user_id": user_id, "roles": list(roles)}
        )

    def create_user(
        self,
        email: str | None = None,
        password: str | None = None,
        *,
        roles: Iterable[str] = (),
        orgs: Mapping[str, Iterable[str]] | None = None,
        email_verified: bool = True,
    ) -> User:
        """A user with a password (random unless given), its app ``roles`` (made if
        missing) and memberships: ``orgs={"acme": ["admin"]}`` (slug: org roles,
        ``admin`` and ``member`` exist in every org; an org is made if missing)."""
        email = email or f"user-{secrets.token_hex(5)}@example.com"
        password = password or new_password()
        made = self.admin(
            "POST",
            "/users",
            json={"email": email, "password": password, "email_verified": email_verified},
        )
        user_id = str(made["id"])
        role_names = tuple(roles)
        for role in role_names:
            self.create_role(role)
            self.admin("POST", f"/users/{user_id}/roles/{role}")
        memberships: dict[str, tuple[str, ...]] = {}
        for slug, org_roles in (orgs or {}).items():
            memberships[slug] = tuple(org_roles)
            self.add_member(self.org(slug), user_id, memberships[slug])
        return User(user_id, email, password, self, role_names, memberships)

    # -- tokens --------------------------------------------------------------------

    def client_token(self, client: Client, scope: str | None = None) -> Tokens:
        """A client_credentials token of a confidential client."""
        if client.client_secret is None:
            raise OneauthError("client_credentials needs a confidential client")
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        response = self.server.http.post(
            self.token_endpoint, data=data, auth=(client.client_id, client.client_secret)
        )
        if response.status_code != 200:
            raise OneauthError(f"client_credentials: {response.status_code} {response.text}")
        return Tokens.of(response.json())

    def authorize_url(
        self,
        client: Client,
        *,
        scope: str = "openid email profile",
        redirect_uri: str | None = None,
        org: str | None = None,
        **params: str,
    ) -> tuple[str, str]:
        """An authorization request with PKCE; returns (URL, code_verifier).
        ``org``: a slug (scope ``organization:<slug>``) or an ``org_...`` id."""
        verifier, challenge = _pkce()
        if org is not None and org.startswith("org_"):
            params["organization_id"] = org
        elif org is not None:
            scope = f"{scope} organization:{org}"
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri or client.redirect_uris[0],
            "scope": scope,
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **params,
        }
        return f"{self.authorization_endpoint}?{urlencode(query)}", verifier

    def sign_in(
        self,
        user: User,
        client: Client | None = None,
        *,
        scope: str = "openid email profile",
        org: str | None = None,
        consent: bool = True,
        **params: str,
    ) -> Tokens:
        """Sign ``user`` in at the hosted login page (authorization code + PKCE, the
        form filled over HTTP) and exchange the code; the tokens.

        ``client``: a client with a redirect URI (default: a first-party public
        client made for this); ``org``: tokens for that org (slug or id);
        ``consent``: the answer on the consent page of a third-party client.
        """
        client = client or self.sign_in_client()
        redirect_uri = client.redirect_uris[0]
        url, verifier = self.authorize_url(
            client, scope=scope, redirect_uri=redirect_uri, org=org, **params
        )
        with httpx.Client(timeout=30) as browser:
            landed = sign_in_through_pages(
                browser,
                url,
                email=user.email,
                password=user.password,
                stop_at=redirect_uri,
                consent=consent,
            )
        result = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
        if "code" not in result:
            raise OneauthError(f"the authorization ended with {result}")
        data = {
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        return self._token(client, data, "code exchange")

    def _token(self, client: Client, data: dict[str, str], what: str) -> Tokens:
        """The token endpoint as ``client``: a secret in Basic auth, else its client_id."""
        if client.client_secret is None:
            response = self.server.http.post(
                self.token_endpoint, data={**data, "client_id": client.client_id}
            )
        else:
            response = self.server.http.post(
                self.token_endpoint, data=data, auth=(client.client_id, client.client_secret)
            )
        if response.status_code != 200:
            raise OneauthError(f"{what}: {response.status_code} {response.text}")
        return Tokens.of(response.json())

    def refresh(self, tokens: Tokens, client: Client | None = None) -> Tokens:
        """Spend ``tokens.refresh_token`` (scope offline_access gives one)."""
        if tokens.refresh_token is None:
            raise OneauthError("no refresh token: ask for scope offline_access")
        client = client or self.sign_in_client()
        data = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        return self._token(client, data, "refresh")


class _Serving:
    """An ASGI app under uvicorn on a bound loopback socket, in a daemon thread."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="asyncio",
            http="h11",
            ws="none",
            # a test's session ends now: a client's idle keep-alive must not hold it
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            daemon=True,
            name="oneauth.testing",
        )

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise OneauthError("the ASGI app did not start (see the log above)")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()


@contextlib.contextmanager
def serve_asgi(make_app: Callable[[str], ASGIApp], *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve an ASGI app on ``host`` and a free port for the ``with`` block; yields its
    base URL. ``make_app(base_url)`` builds it (a relying party must know its own
    redirect URI). For a web app under test that a browser must reach by
    redirects: ``host="localhost"`` makes it another site than oneauth (127.0.0.1),
    as in a deployment, so each keeps its own cookies."""
    sock = _bind("127.0.0.1", 0)
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    try:
        serving = _Serving(make_app(base_url), sock)
    except BaseException:
        sock.close()
        raise
    serving.start()
    try:
        yield base_url
    finally:
        serving.stop()


class Oneauth:
    """The running throwaway service. ``app()`` provisions apps in it."""

    def __init__(self, settings: Settings, database: postgres.ScratchDatabase) -> None:
        self.settings = settings
        self.database = database
        self.http = httpx.Client(timeout=30)
        self._apps: dict[str, OneauthApp] = {}
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.settings.public_url

    def __repr__(self) -> str:
        return f"Oneauth({self.base_url!r}, apps={sorted(self._apps)})"

    def app(
        self,
        app_id: str | None = None,
        name: str | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> OneauthApp:
        """The app ``app_id``, provisioned on first use (a random id when None), with
        an admin client of every admin scope. ``settings``: the app's settings at
        provisioning (as ``oneauth apps provision --set``), e.g. ``{"mfa": "off"}``."""
        app_id = app_id or f"t-{secrets.token_hex(4)}"
        with self._lock:
            known = self._apps.get(app_id)
            if known is not None:
                return known
            spec = clients.ClientSpec(
                name="oneauth.testing admin",
                kind="confidential",
                grant_types=frozenset({"client_credentials"}),
                scopes=APP_ADMIN_SCOPES,
            )
            with ops.connect(self.settings.operator_url) as conn:
                try:
                    record = lifecycle.provision(
                        conn,
                        self.settings,
                        app_id,
                        name or app_id,
                        app_settings=dict(settings or {}),
                    ).app
                except lifecycle.AppError as exc:
                    raise OneauthError(str(exc)) from None
                with conn.transaction(), ops.app_context(conn, record.names):
                    client, secret = clients.create(conn, spec)
            admin = Client(
                client.client_id,
                secret,
                (),
                tuple(sorted(APP_ADMIN_SCOPES)),
                ("client_credentials",),
            )
            made = OneauthApp(self, app_id, admin)
            self._apps[app_id] = made
            return made


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextlib.contextmanager
def start_oneauth(
    *,
    admin_dsn: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    **settings: Any,
) -> Iterator[Oneauth]:
    """Start a throwaway oneauth; stop it and remove its database on exit.

    ``admin_dsn``: an administrator URL of a Postgres to make the database in
    (default: :func:`oneauth.testing.postgres.admin_dsn`, i.e. TEST_DATABASE_URL,
    Docker, local binaries). ``port``: 0 picks a free one. Other keywords are
    :class:`oneauth.settings.Settings` fields (``access_token_ttl`` is an app
    setting, not one of these: pass it to ``app(settings=...)``).
    """
    with contextlib.ExitStack() as stack:
        # A server we did not start is shared: drop what we made there. Our own
        # throwaway cluster goes away whole (faster than dropping each schema).
        shared = admin_dsn is not None or bool(os.environ.get("TEST_DATABASE_URL"))
        if admin_dsn is None:
            admin_dsn = stack.enter_context(postgres.admin_dsn())
        database = postgres.ScratchDatabase(admin_dsn, "fixture")
        if shared:
            stack.callback(database.drop)
        sock = _bind(host, port)
        stack.callback(sock.close)
        base_url = f"http://{host}:{sock.getsockname()[1]}"
        resolved = replace(
            database.settings(pool_min_size=1, pool_max_size=6),
            public_url=base_url,
            host=host,
            port=sock.getsockname()[1],
            **settings,
        )
        summary = migrate_all(database.dsn, settings=resolved, parallelism=1)
        if summary.failed:
            raise OneauthError(f"migration failed: {summary.failed}")
        from oneauth.asgi import create_app

        serving = _Serving(create_app(resolved, configure_logging=False), sock)
        serving.start()
        stack.callback(serving.stop)
        server = Oneauth(resolved, database)
        stack.callback(server.http.close)
        yield server
