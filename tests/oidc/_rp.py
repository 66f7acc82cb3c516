"""A relying party web app built the way the README tells people to: Starlette with
authlib's OpenID Connect client, configured from discovery alone.

One RP serves several providers (apps), each registered under a name:
``/login/{name}`` starts sign-in, ``/callback/{name}`` finishes it (authlib
checks state, PKCE, the ID token's signature, iss, aud, nonce, at_hash, exp)
and answers the ID token claims and the UserInfo response as JSON;
``/logout/{name}`` starts RP-initiated logout, ``/bye/{name}`` checks its state.
"""

from __future__ import annotations

import secrets
import warnings
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; undone on exit)

    # authlib >= 1.9 nudges from httpx to httpx2 at import time; the client works with both.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.starlette_client import OAuth


class RelyingParty:
    def __init__(self) -> None:
        self.oauth = OAuth()
        self.base_url = ""

    def register(self, name: str, issuer: str, client_id: str, client_secret: str) -> None:
        self.oauth.register(
            name=name,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
        )

    def redirect_uri(self, name: str) -> str:
        return f"{self.base_url}/callback/{name}"

    def post_logout_uri(self, name: str) -> str:
        return f"{self.base_url}/bye/{name}"

    def _client(self, request: Request) -> Any:
        client = self.oauth.create_client(request.path_params["name"])
        assert client is not None
        return client

    async def login(self, request: Request) -> Response:
        name = request.path_params["name"]
        response: Response = await self._client(request).authorize_redirect(
            request, self.redirect_uri(name)
        )
        return response

    async def callback(self, request: Request) -> Response:
        name = request.path_params["name"]
        client = self._client(request)
        # RFC 9207: the response must come from the issuer we sent the user to.
        metadata = await client.load_server_metadata()
        if request.query_params.get("iss") != metadata["issuer"]:
            return PlainTextResponse("wrong issuer in the authorization response", 400)
        token = await client.authorize_access_token(request)
        userinfo = await client.userinfo(token=token)
        request.session[name] = {"id_token": token["id_token"]}
        return JSONResponse(
            {
                "id_token_claims": dict(token["userinfo"]),
                "userinfo": dict(userinfo),
                "scope": token.get("scope"),
                "has_refresh_token": "refresh_token" in token,
            }
        )

    async def logout(self, request: Request) -> Response:
        name = request.path_params["name"]
        response: Response = await self._client(request).logout_redirect(
            request,
            post_logout_redirect_uri=self.post_logout_uri(name),
            id_token_hint=request.session[name]["id_token"],
        )
        return response

    async def bye(self, request: Request) -> Response:
        await self._client(request).validate_logout_response(request)
        request.session.pop(request.path_params["name"], None)
        return PlainTextResponse("signed out at the relying party")

    def asgi(self, base_url: str) -> Starlette:
        self.base_url = base_url
        return Starlette(
            routes=[
                Route("/login/{name}", self.login),
                Route("/callback/{name}", self.callback),
                Route("/logout/{name}", self.logout),
                Route("/bye/{name}", self.bye),
            ],
            middleware=[
                Middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), max_age=600)
            ],
        )
