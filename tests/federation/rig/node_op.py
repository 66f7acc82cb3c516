"""panva's ``oidc-provider`` (npm) as the real upstream OpenID Provider of the tests.

The package is pinned and installed once into a cache by :mod:`oneauth.testing.node`
(shared with the benchmark's peer). ``op.mjs`` (our configuration of the provider,
nothing else) is copied next to that ``node_modules`` and started with ``node``; it
listens on an ephemeral loopback port, prints its issuer, and stops with SIGTERM or
when its stdin closes (this process died).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import httpx

from oneauth.testing.node import NodeUnavailable, install, node_tools, script_in

from .interaction import drive, drive_sync

RIG_DIR = Path(__file__).resolve().parent
ABORT = r'href="(/interaction/[^/"]+/abort)"'
# The machine lacks what the rig needs (the fixture turns it into a skip).
RigUnavailable = NodeUnavailable


def _drain(stream: IO[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):  # closed by stop(): done
        for _line in stream:
            pass


@dataclass
class Account:
    """An account at the upstream: its ``sub`` and the claims it releases."""

    sub: str
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    amr: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls, email: str | None = None, *, email_verified: bool | None = True, **kw: Any
    ) -> Account:
        sub = f"u-{secrets.token_hex(6)}"
        return cls(sub, email or f"{sub}@upstream.example", email_verified, **kw)

    def claims(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for key in ("email", "email_verified", "name", "amr"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    metadata: dict[str, Any]


class UpstreamOP:
    """A running oidc-provider: ``issuer``, ``discovery``, accounts, clients, sign-in."""

    def __init__(self, *, host: str = "127.0.0.1", conform_id_token_claims: bool = False) -> None:
        self.host = host
        self.conform_id_token_claims = conform_id_token_claims
        self.issuer = ""
        self._token = secrets.token_urlsafe(24)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log")  # noqa: SIM115
        self.discovery: dict[str, Any] = {}
        self.started_in = 0.0
        # One client for the rig's own calls (a new httpx client per call costs an SSL context).
        self.http = httpx.Client(timeout=5.0)

    # lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> UpstreamOP:
        began = time.monotonic()
        node, npm = node_tools()
        target = install(npm)
        script = script_in(target, RIG_DIR / "op.mjs")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(target)),
            "NODE_ENV": "test",
            "RIG_TOKEN": self._token,
            "RIG_HOST": self.host,
            "RIG_CONFORM": "1" if self.conform_id_token_claims else "0",
        }
        self._proc = subprocess.Popen(
            [node, str(script)],
            cwd=target,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        line = self._first_line(timeout)
        self.issuer = json.loads(line)["issuer"]
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = self.http.get(
                    f"{self.issuer}/.well-known/openid-configuration", timeout=2.0
                )
                if response.status_code == 200:
                    self.discovery = response.json()
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                log = self.log()
                self.stop()
                raise RuntimeError(f"oidc-provider did not answer discovery:\n{log}")
            time.sleep(0.05)
        self.started_in = time.monotonic() - began
        return self

    def _first_line(self, timeout: float) -> str:
        assert self._proc is not None
        stdout = self._proc.stdout
        assert stdout is not None
        out: list[bytes] = []
        reader = threading.Thread(target=lambda: out.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not out or not out[0]:
            log = self.log()
            self.stop()
            raise RuntimeError(f"oidc-provider did not start:\n{log}")
        # Anything node prints later is read and dropped: a full pipe would stall it.
        threading.Thread(target=_drain, args=(stdout,), daemon=True).start()
        return out[0].decode()

    def log(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()
        self.http.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # endpoints -----------------------------------------------------------------

    @property
    def authorization_endpoint(self) -> str:
        return str(self.discovery["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.discovery["token_endpoint"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.discovery["userinfo_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.discovery["jwks_uri"])

    # accounts and clients --------------------------------------------------------

    def put_account(self, account: Account) -> Account:
        """Create or replace the account (its claims as the upstream will release them)."""
        response = self.http.put(
            f"{self.issuer}/_rig/accounts/{account.sub}",
            json=account.claims(),
            headers={"x-rig-token": self._token},
        )
        assert response.status_code == 204, response.text
        return account

    def account(self, email: str | None = None, **kw: Any) -> Account:
        """A new account with a random sub (email verified unless told)."""
        return self.put_account(Account.new(email, **kw))

    def register_client(
        self,
        redirect_uris: Iterable[str],
        *,
        token_endpoint_auth_method: Literal[
            "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
        ] = "client_secret_basic",
        id_token_signed_response_alg: Literal["RS256", "ES256"] = "RS256",
        **metadata: Any,
    ) -> RegisteredClient:
        """Dynamic client registration (RFC 7591) with exactly these redirect URIs."""
        uris = tuple(redirect_uris)
        body = {
            "redirect_uris": list(uris),
            "token_endpoint_auth_method": token_endpoint_auth_method,
            "id_token_signed_response_alg": id_token_signed_response_alg,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            **metadata,
        }
        response = self.http.post(str(self.discovery["registration_endpoint"]), json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return RegisteredClient(data["client_id"], data.get("client_secret"), uris, data)

    def update_redirect_uris(
        self, client: RegisteredClient, redirect_uris: Iterable[str]
    ) -> RegisteredClient:
        """RFC 7592 client update: the same client with exactly these redirect URIs
        (for a test that learns its callback URL after registering the client)."""
        uris = tuple(redirect_uris)
        server_only = {
            "registration_access_token",
            "registration_client_uri",
            "client_secret_expires_at",
            "client_id_issued_at",
        }
        body = {k: v for k, v in client.metadata.items() if k not in server_only}
        body["redirect_uris"] = list(uris)
        response = self.http.put(
            str(client.metadata["registration_client_uri"]),
            json=body,
            headers={"authorization": f"Bearer {client.metadata['registration_access_token']}"},
        )
        assert response.status_code == 200, response.text
        data = {**client.metadata, **response.json()}
        return RegisteredClient(client.client_id, data.get("client_secret"), uris, data)

    # sign-in -------------------------------------------------------------------------

    async def sign_in(self, http: httpx.AsyncClient, authorize_url: str, account: Account) -> str:
        """Follow ``authorize_url`` through the login and consent pages as ``account``
        (made or refreshed at the upstream first); returns the URL the upstream sends
        the browser back to (the callback with code, state, iss; or an error)."""
        self.put_account(account)
        return await drive(http, authorize_url, self.issuer, {"login": account.sub})

    def sign_in_sync(self, http: httpx.Client, authorize_url: str, account: Account) -> str:
        self.put_account(account)
        return drive_sync(http, authorize_url, self.issuer, {"login": account.sub})

    async def cancel(self, http: httpx.AsyncClient, authorize_url: str) -> str:
        """Follow ``authorize_url`` to the login page and press Cancel: the upstream
        answers ``error=access_denied`` at the callback (returned)."""
        return await drive(http, authorize_url, self.issuer, {}, follow_link=ABORT)

    def cancel_sync(self, http: httpx.Client, authorize_url: str) -> str:
        return drive_sync(http, authorize_url, self.issuer, {}, follow_link=ABORT)

    def browser_sign_in(self, page: Any, account: Account, timeout_ms: float = 15000) -> None:
        """With Playwright's sync ``page`` on the upstream's login page: sign in as
        ``account`` (put first) and continue past the consent page when there is one.
        Returns once the browser has left the upstream."""
        self.put_account(account)
        page.fill('input[name="login"]', account.sub)
        page.click('button[type="submit"]')
        page.wait_for_load_state()
        if page.url.startswith(f"{self.issuer}/interaction/"):
            page.click('button:has-text("Continue")')
        page.wait_for_url(lambda url: not url.startswith(self.issuer), timeout=timeout_ms)
