"""A server-side web app that signs its users in with oneauth: OpenID Connect
authorization code flow with PKCE, through authlib's Starlette client, configured
from the issuer's discovery document alone.

``/`` greets the signed-in user (or links to ``/login``); ``/login`` sends the
browser to oneauth's hosted sign-in page; ``/callback`` takes the code back
(authlib checks state, PKCE, and the ID token: signature, iss, aud, nonce, exp),
keeps the user's claims in the app's own signed session cookie and goes home;
``/logout`` ends the app's session and oneauth's (RP-initiated logout).

Run against ``make run`` (see README.md here)::

    OIDC_ISSUER=http://127.0.0.1:8000/apps/demo OIDC_CLIENT_ID=cl_... \\
    OIDC_CLIENT_SECRET=ocs_... uvicorn webapp:app --port 8001
"""

from __future__ import annotations

import html
import os
import secrets
import warnings
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; undone on exit)

    # authlib >= 1.9 nudges from httpx to httpx2 at import time; the client works with both.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth


def create_app(
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    base_url: str,
    session_secret: str | None = None,
) -> Starlette:
    """The web app. ``base_url``: where it is served (its redirect URI is
    ``{base_url}/callback``, its post-logout URI ``{base_url}/``: register both)."""
    oauth = OAuth()
    oauth.register(
        name="oneauth",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    client: Any = oauth.create_client("oneauth")

    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if user is None:
            return HTMLResponse('<p>Not signed in. <a href="/login">Sign in</a></p>')
        email = html.escape(str(user.get("email", "")))
        return HTMLResponse(
            f'<p>Signed in as <strong id="email">{email}</strong>. '
            '<a href="/logout">Sign out</a></p>'
        )

    async def login(request: Request) -> Response:
        response: Response = await client.authorize_redirect(request, f"{base_url}/callback")
        return response

    async def callback(request: Request) -> Response:
        if "error" in request.query_params:
            # e.g. access_denied: the user declined; show it, do not sign anyone in
            return PlainTextResponse(f"sign-in failed: {request.query_params['error']}", 400)
        # RFC 9207: the answer must come from the issuer the browser was sent to.
        metadata = await client.load_server_metadata()
        if request.query_params.get("iss") != metadata["issuer"]:
            return PlainTextResponse("wrong issuer in the authorization response", 400)
        token = await client.authorize_access_token(request)
        claims = token["userinfo"]  # the verified ID token's claims
        request.session["user"] = {"sub": claims["sub"], "email": claims.get("email")}
        request.session["id_token"] = token["id_token"]
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        id_token = request.session.pop("id_token", None)
        request.session.pop("user", None)
        if id_token is None:
            return RedirectResponse("/", 303)
        response: Response = await client.logout_redirect(
            request, post_logout_redirect_uri=f"{base_url}/", id_token_hint=id_token
        )
        return response

    return Starlette(
        routes=[
            Route("/", home),
            Route("/login", login),
            Route("/callback", callback),
            Route("/logout", logout),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=session_secret or secrets.token_urlsafe(32),
                https_only=base_url.startswith("https://"),
                max_age=8 * 3600,
            )
        ],
    )


def from_environment() -> Starlette:
    """The app configured by OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, APP_URL
    (default http://localhost:8001) and SESSION_SECRET (default: a new one per start)."""
    return create_app(
        issuer=os.environ["OIDC_ISSUER"],
        client_id=os.environ["OIDC_CLIENT_ID"],
        client_secret=os.environ["OIDC_CLIENT_SECRET"],
        base_url=os.environ.get("APP_URL", "http://localhost:8001").rstrip("/"),
        session_secret=os.environ.get("SESSION_SECRET") or None,
    )


def __getattr__(name: str) -> Any:
    # `uvicorn webapp:app` builds it from the environment; importing the module does not.
    if name == "app":
        return from_environment()
    raise AttributeError(name)
