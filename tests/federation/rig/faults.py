"""Upstreams that misbehave on purpose, for the refusal and timeout tests.

- ``HangServer``: accepts TCP connections and never answers a byte (``silent``), or
  answers an HTTP status line one byte every half second forever (``trickle``: a
  per-read timeout alone never fires, only a bound on the whole exchange does). It
  counts the connections it accepted and how many the client still holds open.
- ``closed_port()``: a loopback port nothing listens on (connection refused).
- ``FaultyOP``: a tiny OpenID Provider (Starlette + jwcrypto) that is correct by
  default (discovery, JWKS, authorize with a login form, token with PKCE and client
  authentication, userinfo) and misbehaves per client as its ``Faults`` say:
  tampered ID token signature, a key not in its JWKS, ``alg: none``, wrong nonce,
  wrong or missing ``iss`` in the callback, wrong ``iss``/``aud``/``azp`` in the ID
  token, expired ID token, claims only in the ID token or only in userinfo, a
  different ``sub`` at userinfo, OAuth errors at the authorization or token endpoint,
  a slow token endpoint. Per server: ``discovery_status``/``jwks_status`` (a failing
  discovery or JWKS), ``rotate_keys()`` (a new kid), ``discovery_overrides`` change
  its discovery document (``token_endpoint``/``jwks_uri``/``userinfo_endpoint`` set
  to a HangServer's URL: an upstream that signs the user in, then stops answering;
  ``OMIT`` drops a member, e.g. ``authorization_response_iss_parameter_supported``).
- Apple-style clients (``register_apple_client``): ``response_mode=form_post`` answers
  with an HTML form posting ``code``, ``state`` and, on an account's first sign-in
  only, ``user`` (Apple's JSON with the name) to the redirect URI; the token endpoint
  authenticates the client by Apple's signed client secret: an ES256 JWT checked
  with the client's public key (``kid``, ``iss`` = team id, ``sub`` = client id,
  ``aud`` = https://appleid.apple.com, ``iat``/``exp``), as Apple's REST API
  documents. Every check's verdict is in ``client_secret_verdicts``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from html import escape
from typing import Any, Literal
from urllib.parse import unquote_plus, urlencode

import httpx
from jwcrypto import jwk, jws
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .interaction import drive, drive_sync
from .node_op import Account, RegisteredClient

OMIT = "<omit>"  # a Faults value that drops the member altogether


class HangServer:
    """Accepts on 127.0.0.1:<ephemeral>, never answers (or trickles); ``url`` is its base."""

    def __init__(self, mode: Literal["silent", "trickle"] = "silent") -> None:
        self.mode = mode
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> HangServer:
        self._thread.start()
        return self

    @property
    def open_connections(self) -> int:
        """Connections accepted that the client has not closed (yet)."""
        with self._lock:
            return len(self._open)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        line = b"HTTP/1.1 200 OK\r\nX-Slow: "
        sent: dict[socket.socket, int] = {}
        last_trickle = time.monotonic()
        while not self._stop.is_set():
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._sock:
                    try:
                        conn, _addr = self._sock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                    sent[conn] = 0
                    with self._lock:
                        self.accepted += 1
                        self._open.add(conn)
                    continue
                try:
                    data = sock.recv(65536)  # the request: read and ignored
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # the client gave up: good
                    selector.unregister(sock)
                    sock.close()
                    sent.pop(sock, None)
                    with self._lock:
                        self._open.discard(sock)
            if self.mode == "trickle" and time.monotonic() - last_trickle >= 0.5:
                last_trickle = time.monotonic()
                for conn, count in list(sent.items()):
                    byte = line[count : count + 1] or b"x"
                    try:
                        conn.send(byte)
                        sent[conn] = count + 1
                    except OSError:
                        pass
        for conn in list(sent):
            conn.close()
        selector.close()

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Whether every accepted connection was closed by the client within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_connections == 0:
                return True
            time.sleep(0.05)
        return self.open_connections == 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def closed_port() -> int:
    """A loopback port that was free a moment ago and has no listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


Signature = Literal["ok", "tampered", "unknown_key", "none"]


@dataclass
class Faults:
    """How the FaultyOP misbehaves for one client (defaults: not at all).

    String members: None = the correct value, OMIT = leave the member out,
    anything else = that value instead.
    """

    signature: Signature = "ok"
    id_token_alg: Literal["RS256", "ES256"] = "RS256"
    callback_iss: str | None = None
    id_token_iss: str | None = None
    id_token_aud: str | list[str] | None = None
    id_token_azp: str | None = None
    id_token_nonce: str | None = None
    id_token_sub: str | None = None
    expired: bool = False
    issued_in_future: bool = False
    id_token_omit: frozenset[str] = frozenset()
    id_token_extra: dict[str, Any] = field(default_factory=dict)
    userinfo_omit: frozenset[str] = frozenset()
    userinfo_extra: dict[str, Any] = field(default_factory=dict)
    userinfo_sub: str | None = None
    userinfo_status: int = 200
    no_id_token: bool = False
    authorize_error: tuple[str, str] | None = None
    token_error: tuple[int, str, str] | None = None  # status, error, description
    token_delay: float = 0.0


@dataclass
class _Pending:
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str | None
    challenge: str
    scope: str
    form_post: bool = False


APPLE_AUDIENCE = "https://appleid.apple.com"


@dataclass(frozen=True)
class AppleClient:
    """An Apple-style client: its team, the key's id and the PUBLIC key that checks
    its client-secret JWTs (the private PEM is the test's, given to oneauth)."""

    team_id: str
    key_id: str
    public_key: jwk.JWK
    private_pem: str


@dataclass
class _Grant:
    pending: _Pending
    account: Account
    expires: float


def _new_keys() -> tuple[dict[str, jwk.JWK], jwk.JWK]:
    keys = {
        "RS256": jwk.JWK.generate(kty="RSA", size=2048, kid=f"rs-{secrets.token_hex(4)}"),
        "ES256": jwk.JWK.generate(kty="EC", crv="P-256", kid=f"es-{secrets.token_hex(4)}"),
    }
    # Same kid as the published RSA key, different key: a forged signature.
    rogue = jwk.JWK.generate(kty="RSA", size=2048, kid=keys["RS256"]["kid"])
    return keys, rogue


_FIRST_KEYS: list[tuple[dict[str, jwk.JWK], jwk.JWK]] = []


class FaultyOP:
    """State of the tiny OP; ``asgi(base_url)`` is its Starlette app (for LiveServer)."""

    def __init__(self) -> None:
        self.issuer = ""
        # Every instance starts with the same keys (RSA generation is slow on a busy
        # machine; each instance has its own issuer anyway); rotate_keys() makes new.
        if not _FIRST_KEYS:
            _FIRST_KEYS.append(_new_keys())
        first, rogue = _FIRST_KEYS[0]
        self.keys: dict[str, jwk.JWK] = dict(first)
        self.rogue = rogue
        self.clients: dict[str, tuple[RegisteredClient, Faults]] = {}
        self.accounts: dict[str, Account] = {}
        self.discovery_overrides: dict[str, Any] = {}
        self.discovery_status = 200  # e.g. 500: an upstream whose discovery fails
        self.jwks_status = 200
        self.jwks_requests = 0
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, tuple[str, Account]] = {}
        self.token_requests = 0
        self.userinfo_requests = 0
        self.apple: dict[str, AppleClient] = {}
        self.client_secret_verdicts: list[str] = []  # "ok" or why a JWT was refused
        self._named: set[tuple[str, str]] = set()  # (client, sub) that got ``user`` once
        self.issued_tokens: list[dict[str, Any]] = []  # token responses, in order
        self.refresh_tokens = False  # also issue a refresh token

    # set-up ---------------------------------------------------------------------

    def register_client(
        self, redirect_uris: list[str] | tuple[str, ...], faults: Faults | None = None
    ) -> RegisteredClient:
        client = RegisteredClient(
            f"faulty-{secrets.token_hex(6)}", secrets.token_urlsafe(24), tuple(redirect_uris), {}
        )
        self.clients[client.client_id] = (client, faults or Faults())
        return client

    def register_apple_client(
        self, redirect_uris: list[str] | tuple[str, ...], faults: Faults | None = None
    ) -> tuple[RegisteredClient, AppleClient]:
        """An Apple-style client (form_post, signed client secret). Apple sends no
        ``iss`` in its answer: set ``discovery_overrides`` to drop
        ``authorization_response_iss_parameter_supported`` too."""
        key = jwk.JWK.generate(kty="EC", crv="P-256", kid=f"AK{secrets.token_hex(4).upper()}")
        apple = AppleClient(
            team_id=f"TEAM{secrets.token_hex(3).upper()}",
            key_id=key["kid"],
            public_key=jwk.JWK.from_json(key.export_public()),
            private_pem=key.export_to_pem(private_key=True, password=None).decode(),
        )
        client = RegisteredClient(
            f"com.example.{secrets.token_hex(4)}", None, tuple(redirect_uris), {}
        )
        self.clients[client.client_id] = (client, faults or Faults(callback_iss=OMIT))
        self.apple[client.client_id] = apple
        return client, apple

    def _apple_secret_verdict(self, client_id: str, secret: str) -> str:
        """Apple's checks of a client secret JWT; "ok" or the reason it is refused."""
        apple = self.apple[client_id]
        try:
            token = jws.JWS()
            token.deserialize(secret)
            header = token.jose_header
            if header.get("alg") != "ES256":
                return "alg"
            if header.get("kid") != apple.key_id:
                return "kid"
            token.verify(apple.public_key, alg="ES256")
            claims = json.loads(token.payload)
        except Exception:
            return "signature"
        now = time.time()
        checks = {
            "iss": claims.get("iss") == apple.team_id,
            "sub": claims.get("sub") == client_id,
            "aud": claims.get("aud") == APPLE_AUDIENCE,
            "iat": isinstance(claims.get("iat"), int) and claims["iat"] <= now + 60,
            "exp": isinstance(claims.get("exp"), int)
            and now < claims["exp"] <= claims.get("iat", 0) + 15_777_000,
        }
        return next((name for name, ok in checks.items() if not ok), "ok")

    def update_redirect_uris(
        self, client: RegisteredClient, redirect_uris: list[str] | tuple[str, ...]
    ) -> RegisteredClient:
        updated = replace(client, redirect_uris=tuple(redirect_uris))
        self.clients[client.client_id] = (updated, self.clients[client.client_id][1])
        return updated

    def set_faults(self, client_id: str, faults: Faults | None = None, **changes: Any) -> Faults:
        client, current = self.clients[client_id]
        new = replace(faults or current, **changes)
        self.clients[client_id] = (client, new)
        return new

    def put_account(self, account: Account) -> Account:
        self.accounts[account.sub] = account
        return account

    def rotate_keys(self) -> None:
        """New signing keys with new kids (the old ones leave the JWKS): a downstream
        with a cached JWKS sees an unknown kid and must fetch it again."""
        self.keys, self.rogue = _new_keys()

    def account(self, email: str | None = None, **kw: Any) -> Account:
        return self.put_account(Account.new(email, **kw))

    @property
    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        doc = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
            "claims_supported": ["sub", "email", "email_verified", "name"],
            "authorization_response_iss_parameter_supported": True,
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v != OMIT}

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    # the server --------------------------------------------------------------------

    def asgi(self, base_url: str) -> Starlette:
        self.issuer = base_url
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
                Route("/jwks", self._jwks, methods=["GET"]),
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/authorize/login", self._login, methods=["POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo, methods=["GET", "POST"]),
            ]
        )

    async def _discovery(self, _request: Request) -> Response:
        if self.discovery_status != 200:
            return HTMLResponse("<h1>upstream error</h1>", status_code=self.discovery_status)
        return JSONResponse(self.discovery)

    async def _jwks(self, _request: Request) -> Response:
        self.jwks_requests += 1
        if self.jwks_status != 200:
            return HTMLResponse("<h1>upstream error</h1>", status_code=self.jwks_status)
        keys = [json.loads(k.export_public()) for k in self.keys.values()]
        for key, alg in zip(keys, self.keys, strict=True):
            key.update(alg=alg, use="sig")
        return JSONResponse({"keys": keys})

    @staticmethod
    def _bad_request(text: str) -> Response:
        return HTMLResponse(f"<h1>Bad request</h1><p>{escape(text)}</p>", status_code=400)

    def _redirect(self, pending: _Pending, faults: Faults, **params: str) -> RedirectResponse:
        if pending.state is not None:
            params["state"] = pending.state
        if faults.callback_iss != OMIT:
            params["iss"] = faults.callback_iss or self.issuer
        sep = "&" if "?" in pending.redirect_uri else "?"
        return RedirectResponse(f"{pending.redirect_uri}{sep}{urlencode(params)}", status_code=303)

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        entry = self.clients.get(q.get("client_id", ""))
        if entry is None:
            return self._bad_request("unknown client_id")
        client, faults = entry
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._bad_request("redirect_uri is not registered for this client")
        pending = _Pending(
            client.client_id,
            redirect_uri,
            q.get("state"),
            q.get("nonce"),
            q.get("code_challenge", ""),
            q.get("scope", ""),
            form_post=q.get("response_mode") == "form_post",
        )
        if q.get("response_type") != "code":
            return self._redirect(pending, faults, error="unsupported_response_type")
        if not pending.challenge or q.get("code_challenge_method") != "S256":
            return self._redirect(
                pending, faults, error="invalid_request", error_description="PKCE S256 required"
            )
        if "openid" not in pending.scope.split():
            return self._redirect(pending, faults, error="invalid_scope")
        if faults.authorize_error is not None:
            error, description = faults.authorize_error
            return self._redirect(pending, faults, error=error, error_description=description)
        rid = secrets.token_urlsafe(16)
        self._pending[rid] = pending
        return HTMLResponse(
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Sign in (faulty OP)</title></head><body><h1>Sign in (faulty OP)</h1>"
            '<form method="post" action="/authorize/login">'
            f'<input type="hidden" name="rid" value="{rid}">'
            '<label>Account <input name="login"></label>'
            '<button type="submit">Sign in</button></form></body></html>'
        )

    async def _login(self, request: Request) -> Response:
        form = await request.form()
        pending = self._pending.pop(str(form.get("rid", "")), None)
        if pending is None:
            return self._bad_request("unknown or used sign-in request")
        account = self.accounts.get(str(form.get("login", "")))
        _client, faults = self.clients[pending.client_id]
        if account is None:
            return self._redirect(pending, faults, error="access_denied")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(pending, account, time.monotonic() + 60)
        if pending.form_post:
            return self._form_post(pending, faults, account, code)
        return self._redirect(pending, faults, code=code)

    def _form_post(
        self, pending: _Pending, faults: Faults, account: Account, code: str
    ) -> Response:
        """OAuth 2.0 Form Post Response Mode, as Apple answers: a page whose form
        posts the answer to the redirect URI (a browser's script submits it)."""
        fields = {"code": code}
        if pending.state is not None:
            fields["state"] = pending.state
        if faults.callback_iss not in (None, OMIT):
            fields["iss"] = str(faults.callback_iss)
        key = (pending.client_id, account.sub)
        if key not in self._named and account.name:
            # Apple sends the user's name (and an email we must not trust) once.
            first, _, last = account.name.partition(" ")
            user = {"name": {"firstName": first, "lastName": last}, "email": account.email}
            user.update(account.extra.get("apple_user", {}))
            fields["user"] = json.dumps(user)
            self._named.add(key)
        inputs = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
            for k, v in fields.items()
        )
        return HTMLResponse(
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Signing in</title></head><body>"
            f'<form method="post" action="{escape(pending.redirect_uri)}">{inputs}'
            '<button type="submit">Continue</button></form></body></html>'
        )

    @staticmethod
    def _oauth_error(status: int, error: str, description: str = "") -> Response:
        body = {"error": error}
        if description:
            body["error_description"] = description
        return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})

    def _client_auth(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            raw = base64.b64decode(header[6:]).decode("utf-8", "replace")
            client_id, _, secret = raw.partition(":")
            return unquote_plus(client_id), unquote_plus(secret)
        return form.get("client_id", ""), form.get("client_secret", "")

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, secret = self._client_auth(request, form)
        entry = self.clients.get(client_id)
        if client_id in self.apple:
            verdict = self._apple_secret_verdict(client_id, secret)
            self.client_secret_verdicts.append(verdict)
            if verdict != "ok":
                return self._oauth_error(400, "invalid_client")  # as Apple answers
        elif entry is None or not secrets.compare_digest(entry[0].client_secret or "", secret):
            return self._oauth_error(401, "invalid_client")
        assert entry is not None
        client, faults = entry
        if faults.token_delay:
            await asyncio.sleep(faults.token_delay)
        if faults.token_error is not None:
            return self._oauth_error(*faults.token_error)
        if form.get("grant_type") != "authorization_code":
            return self._oauth_error(400, "unsupported_grant_type")
        grant = self._codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or grant.pending.client_id != client.client_id
            or grant.expires < time.monotonic()
            or form.get("redirect_uri") != grant.pending.redirect_uri
        ):
            return self._oauth_error(400, "invalid_grant")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.pending.challenge:
            return self._oauth_error(400, "invalid_grant", "PKCE verification failed")
        access = secrets.token_urlsafe(24)
        self._tokens[access] = (client.client_id, grant.account)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 600}
        if self.refresh_tokens:
            body["refresh_token"] = f"rt-{secrets.token_urlsafe(24)}"
        if not faults.no_id_token:
            body["id_token"] = self.id_token(client.client_id, grant.pending, grant.account, faults)
        self.issued_tokens.append(body)
        return JSONResponse(body, headers={"cache-control": "no-store"})

    def id_token(self, client_id: str, pending: _Pending, account: Account, faults: Faults) -> str:
        now = int(time.time())
        iat = now - 600 if faults.expired else now + 3600 if faults.issued_in_future else now
        claims: dict[str, Any] = {
            "iss": faults.id_token_iss or self.issuer,
            "sub": faults.id_token_sub or account.sub,
            "aud": faults.id_token_aud or client_id,
            "iat": iat,
            "exp": iat + 300,
            "auth_time": iat,
        }
        nonce = faults.id_token_nonce or pending.nonce
        if nonce is not None:
            claims["nonce"] = nonce
        if faults.id_token_azp is not None:
            claims["azp"] = faults.id_token_azp
        claims.update(account.claims())
        claims.update(faults.id_token_extra)
        claims = {k: v for k, v in claims.items() if k not in faults.id_token_omit and v != OMIT}
        return self._sign(claims, faults)

    def _sign(self, claims: dict[str, Any], faults: Faults) -> str:
        payload = json.dumps(claims, separators=(",", ":"))
        if faults.signature == "none":
            header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
            body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
            return f"{header}.{body}."
        alg = faults.id_token_alg
        key = self.rogue if faults.signature == "unknown_key" else self.keys[alg]
        if faults.signature == "unknown_key":
            alg = "RS256"
        token = jws.JWS(payload.encode())
        token.add_signature(key, alg=alg, protected={"alg": alg, "kid": key["kid"], "typ": "JWT"})
        compact: str = token.serialize(compact=True)
        if faults.signature == "tampered":
            # Change the payload after signing: the signature no longer covers it.
            header, _body, signature = compact.split(".")
            forged = dict(claims, email="attacker@evil.example", email_verified=True)
            body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
            compact = f"{header}.{body}.{signature}"
        return compact

    async def _userinfo(self, request: Request) -> Response:
        self.userinfo_requests += 1
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        found = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            )
        client_id, account = found
        faults = self.clients[client_id][1]
        if faults.userinfo_status != 200:
            return JSONResponse({"error": "server_error"}, status_code=faults.userinfo_status)
        claims: dict[str, Any] = {"sub": faults.userinfo_sub or account.sub, **account.claims()}
        claims.update(faults.userinfo_extra)
        claims = {k: v for k, v in claims.items() if k not in faults.userinfo_omit and v != OMIT}
        return JSONResponse(claims)

    # driving -----------------------------------------------------------------------

    async def sign_in(self, http: httpx.AsyncClient, authorize_url: str, account: Account) -> str:
        self.put_account(account)
        return await drive(http, authorize_url, self.issuer, {"login": account.sub})

    def sign_in_sync(self, http: httpx.Client, authorize_url: str, account: Account) -> str:
        self.put_account(account)
        return drive_sync(http, authorize_url, self.issuer, {"login": account.sub})

    async def sign_in_form_post(
        self, http: httpx.AsyncClient, authorize_url: str, account: Account
    ) -> tuple[str, dict[str, str]]:
        """An Apple-style sign-in: the form the upstream's page would post to the
        callback (its action and fields), not posted."""
        from oidc._support import forms

        self.put_account(account)
        page = await http.get(authorize_url)
        assert page.status_code == 200, page.text
        rid = forms(page.text)[0].fields["rid"]
        answer = await http.post(
            f"{self.issuer}/authorize/login", data={"rid": rid, "login": account.sub}
        )
        assert answer.status_code == 200, answer.text
        (form,) = forms(answer.text)
        return form.action, dict(form.fields)

    def browser_sign_in(self, page: Any, account: Account) -> None:
        """With Playwright's sync ``page`` on the sign-in page: sign in as ``account``."""
        self.put_account(account)
        page.fill('input[name="login"]', account.sub)
        page.click('button[type="submit"]')
