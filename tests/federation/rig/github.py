"""A GitHub-style OAuth 2.0 server: a STAND-IN for github.com, which the test
machines cannot reach.

It follows GitHub's public documentation of OAuth apps ("Authorizing OAuth apps",
"Troubleshooting authorization request errors", "Troubleshooting OAuth app access
token request errors", REST "Users" and "Emails"), in GitHub Enterprise Server's
layout so one origin serves both halves: the web flow at ``/login/oauth/...`` and
the REST API at ``/api/v3/...`` (also at ``/user``, ``/user/emails`` for a client
configured with the same base for both). What it reproduces, because a client must
cope with it:

- ``GET /login/oauth/authorize`` (client_id, redirect_uri, scope, state, login,
  allow_signup, code_challenge + ``S256``): a sign-in page (field ``login``, button
  "Authorize"; "Cancel" sends ``access_denied``). The redirect URI must equal the
  app's registered callback URL exactly; otherwise GitHub sends the browser to the
  REGISTERED callback with ``error=redirect_uri_mismatch`` (and the state).
- ``POST /login/oauth/access_token`` (client_id, client_secret in the body or HTTP
  Basic, code, redirect_uri, code_verifier): form-encoded answer unless
  ``Accept: application/json``; errors (``bad_verification_code``,
  ``incorrect_client_credentials``, ``redirect_uri_mismatch``) come with HTTP 200 and
  an ``error`` member, as GitHub does. Codes are single use and live 10 minutes.
  Scopes in the answer are comma-separated.
- ``GET /user``: the user (``id`` is the stable number; ``login`` can be renamed;
  ``email`` is the PUBLIC email or null). 401 ``Bad credentials`` for a bad token.
- ``GET /user/emails``: ``[{email, primary, verified, visibility}]``, only with the
  ``user:email`` or ``user`` scope (404 otherwise). ``X-OAuth-Scopes`` on API answers.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from .interaction import drive, drive_sync

DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
CODE_TTL = 600.0


@dataclass
class GitHubEmail:
    email: str
    primary: bool = False
    verified: bool = True
    visibility: str | None = "private"


@dataclass
class GitHubUser:
    id: int
    login: str
    name: str | None = None
    email: str | None = None  # the public email: often null
    emails: list[GitHubEmail] = field(default_factory=list)

    def public(self, base: str) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": self.id,
            "node_id": base64.b64encode(f"04:User{self.id}".encode()).decode(),
            "avatar_url": f"{base}/avatars/u/{self.id}",
            "html_url": f"{base}/{self.login}",
            "type": "User",
            "site_admin": False,
            "name": self.name,
            "company": None,
            "email": self.email,
            "created_at": "2020-01-01T00:00:00Z",
        }


@dataclass
class GitHubApp:
    client_id: str
    client_secret: str
    callback_url: str
    # A test may make the token endpoint fail for this app: (error, description),
    # answered with HTTP 200 as GitHub does.
    token_error: tuple[str, str] | None = None


@dataclass
class _Code:
    app: GitHubApp
    user: GitHubUser
    scopes: tuple[str, ...]
    redirect_uri: str | None
    challenge: str | None
    expires: float


@dataclass
class _Token:
    user: GitHubUser
    scopes: tuple[str, ...]


class GitHubStandIn:
    """The server's state; ``asgi(base_url)`` is its Starlette app (for LiveServer)."""

    def __init__(self) -> None:
        self.base_url = ""
        self.apps: dict[str, GitHubApp] = {}
        self.users: dict[str, GitHubUser] = {}
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._next_id = 1000
        self.token_requests = 0

    # set-up by tests -------------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/login/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/login/oauth/access_token"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v3"

    def register_app(self, callback_url: str) -> GitHubApp:
        app = GitHubApp(f"Iv1.{secrets.token_hex(8)}", secrets.token_hex(20), callback_url)
        self.apps[app.client_id] = app
        return app

    def set_callback(self, app: GitHubApp, callback_url: str) -> GitHubApp:
        """Change the app's callback URL (GitHub's app settings page)."""
        app.callback_url = callback_url
        return app

    def add_user(
        self,
        email: str | None = None,
        *,
        verified: bool = True,
        login: str | None = None,
        name: str | None = None,
        public_email: bool = False,
        extra_emails: list[GitHubEmail] | None = None,
    ) -> GitHubUser:
        """A user whose primary email is ``email`` (verified unless told)."""
        self._next_id += 1
        login = login or f"octo-{secrets.token_hex(4)}"
        emails = []
        if email is not None:
            emails.append(GitHubEmail(email, primary=True, verified=verified))
        emails.extend(extra_emails or [])
        user = GitHubUser(
            self._next_id,
            login,
            name or login.title(),
            email if public_email else None,
            emails,
        )
        self.users[login] = user
        return user

    # the server ----------------------------------------------------------------------

    def asgi(self, base_url: str) -> Starlette:
        self.base_url = base_url
        api = [
            Route("/user", self.user, methods=["GET"]),
            Route("/user/emails", self.emails, methods=["GET"]),
        ]
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize, methods=["GET", "POST"]),
                Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
                *api,
                *[Route(f"/api/v3{r.path}", r.endpoint, methods=["GET"]) for r in api],
            ]
        )

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            return HTMLResponse("<h1>404 Not Found</h1>", status_code=404)
        state = params.get("state")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != app.callback_url:
            return self._back(
                app.callback_url,
                state,
                error="redirect_uri_mismatch",
                error_description="The redirect_uri MUST match the registered callback URL "
                "for this application.",
            )
        if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
            return HTMLResponse("<h1>code_challenge_method must be S256</h1>", status_code=400)
        if request.method == "GET":
            return HTMLResponse(self._page(params))
        if params.get("authorize") != "1":
            return self._back(
                app.callback_url,
                state,
                error="access_denied",
                error_description="The user has denied your application access.",
            )
        user = self.users.get(params.get("login", ""))
        if user is None:
            return HTMLResponse(self._page(params, "Incorrect username or password."))
        code = secrets.token_hex(10)
        scopes = tuple(s for s in params.get("scope", "").replace(",", " ").split() if s)
        self._codes[code] = _Code(
            app,
            user,
            scopes,
            redirect_uri,
            params.get("code_challenge") or None,
            time.monotonic() + CODE_TTL,
        )
        return self._back(redirect_uri or app.callback_url, state, code=code)

    @staticmethod
    def _back(target: str, state: str | None, **params: str) -> Response:
        if state is not None:
            params["state"] = state
        sep = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{sep}{urlencode(params)}", status_code=302)

    @staticmethod
    def _page(params: dict[str, str], error: str = "") -> str:
        keep = {k: v for k, v in params.items() if k not in ("login", "authorize")}
        hidden = "".join(
            f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in keep.items()
        )
        alert = f'<p role="alert">{escape(error)}</p>' if error else ""
        login = escape(params.get("login", ""))
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Sign in to GitHub (stand-in)</title></head><body>"
            f"<h1>Sign in to GitHub (stand-in)</h1>{alert}"
            f'<form method="post" action="/login/oauth/authorize">{hidden}'
            f'<label>Username <input name="login" value="{login}"></label>'
            '<button type="submit" name="authorize" value="1">Authorize</button>'
            '<button type="submit" name="authorize" value="0">Cancel</button>'
            "</form></body></html>"
        )

    async def access_token(self, request: Request) -> Response:
        self.token_requests += 1
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            client_id, _, client_secret = (
                base64.b64decode(basic[6:]).decode("utf-8", "replace").partition(":")
            )
        wants_json = "application/json" in request.headers.get("accept", "")
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            return self._token_error(
                wants_json,
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        if app.token_error is not None:
            return self._token_error(wants_json, *app.token_error)
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.app is not app or grant.expires < time.monotonic():
            return self._token_error(
                wants_json,
                "bad_verification_code",
                "The code passed is incorrect or expired.",
            )
        if grant.redirect_uri is not None and form.get("redirect_uri") != grant.redirect_uri:
            return self._token_error(
                wants_json,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            )
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not secrets.compare_digest(computed, grant.challenge):
                return self._token_error(
                    wants_json, "bad_verification_code", "The code_verifier is incorrect."
                )
        token = f"gho_{secrets.token_urlsafe(27)}"
        self._tokens[token] = _Token(grant.user, grant.scopes)
        body = {"access_token": token, "scope": ",".join(grant.scopes), "token_type": "bearer"}
        if wants_json:
            return JSONResponse(body)
        return PlainTextResponse(urlencode(body), media_type="application/x-www-form-urlencoded")

    @staticmethod
    def _token_error(wants_json: bool, error: str, description: str) -> Response:
        body = {"error": error, "error_description": description, "error_uri": DOCS}
        if wants_json:
            return JSONResponse(body)  # HTTP 200: GitHub's way
        return PlainTextResponse(urlencode(body), media_type="application/x-www-form-urlencoded")

    def _bearer(self, request: Request) -> _Token | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        return self._tokens.get(value.strip())

    @staticmethod
    def _api_error(status: int, message: str, docs: str) -> Response:
        return JSONResponse(
            {"message": message, "documentation_url": docs, "status": str(status)},
            status_code=status,
        )

    async def user(self, request: Request) -> Response:
        if not request.headers.get("authorization"):
            return self._api_error(
                401,
                "Requires authentication",
                "https://docs.github.com/rest/users/users#get-the-authenticated-user",
            )
        token = self._bearer(request)
        if token is None:
            return self._api_error(401, "Bad credentials", "https://docs.github.com/rest")
        return JSONResponse(
            token.user.public(self.base_url),
            headers={"x-oauth-scopes": ", ".join(token.scopes)},
        )

    async def emails(self, request: Request) -> Response:
        token = self._bearer(request)
        if token is None:
            return self._api_error(401, "Bad credentials", "https://docs.github.com/rest")
        if not {"user", "user:email"} & set(token.scopes):
            return self._api_error(
                404,
                "Not Found",
                "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user",
            )
        return JSONResponse(
            [
                {
                    "email": e.email,
                    "primary": e.primary,
                    "verified": e.verified,
                    "visibility": e.visibility if e.primary else None,
                }
                for e in token.user.emails
            ],
            headers={"x-oauth-scopes": ", ".join(token.scopes)},
        )

    # driving the page ----------------------------------------------------------------

    async def sign_in(
        self, http: httpx.AsyncClient, authorize_url: str, user: GitHubUser, *, allow: bool = True
    ) -> str:
        """Through the sign-in page as ``user`` (Authorize, or Cancel when not
        ``allow``); returns the URL GitHub sends the browser back to."""
        fill = {"login": user.login, "authorize": "1" if allow else "0"}
        return await drive(http, authorize_url, self.base_url, fill)

    def sign_in_sync(
        self, http: httpx.Client, authorize_url: str, user: GitHubUser, *, allow: bool = True
    ) -> str:
        fill = {"login": user.login, "authorize": "1" if allow else "0"}
        return drive_sync(http, authorize_url, self.base_url, fill)

    @staticmethod
    def browser_sign_in(page: Any, user: GitHubUser) -> None:
        """With Playwright's sync ``page`` on the sign-in page: Authorize as ``user``."""
        page.fill('input[name="login"]', user.login)
        page.click('button:has-text("Authorize")')
