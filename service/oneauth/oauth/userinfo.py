"""The UserInfo endpoint (OpenID Connect Core 1.0 section 5.3).

A user's access token of this app with the ``openid`` scope, sent as a Bearer
token (RFC 6750 section 2.1 header, or 2.2 form body on POST). Client
credentials tokens act for no user and are refused (T4), as is any token of
another app (B1: the verifier pins issuer, audience and app_id) and any token
whose session has ended. Claims follow the scopes (section 5.4).
Errors are RFC 6750 section 3 challenges.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.errors import ApiError
from oneauth.http.contract import Operation, form_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token
from oneauth.oauth.models import UNSET, BearerChallenge, BearerForm, ChallengeError, UserInfo
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.verifier import VerificationError

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def _challenge(
    app_id: str, status: int, error: ChallengeError | None, description: str
) -> Response:
    header = f'Bearer realm="{app_id}"'
    body = BearerChallenge()
    if error is not None:  # RFC 6750 3.1: no error code when no credentials were sent
        header += f', error="{error}", error_description="{description}"'
        body = BearerChallenge(error=error, error_description=description)
    return json_response(body, status, headers={**NO_STORE, "www-authenticate": header})


def claims_for(sub: str, scopes: Iterable[str], user: asyncpg.Record) -> UserInfo:
    """The user's claims that ``scopes`` release (section 5.4); ``openid`` checked by the caller.

    Also what ``/v1/me`` answers to a third-party client's token, so that the
    first-party API never tells a client more than its grant (item 4).
    """
    granted = set(scopes)
    email = "email" in granted
    return UserInfo(
        sub=sub,
        email=user["email"] if email else UNSET,
        email_verified=user["email_verified"] if email else UNSET,
        # We hold no name fields yet; updated_at is the one profile claim we have.
        updated_at=int(user["updated_at"].timestamp()) if "profile" in granted else UNSET,
    )


async def _token(request: Request) -> str | None:
    token = bearer_token(request)
    if token is None and request.method == "POST":
        try:
            token = (await form_body(request, BearerForm)).access_token or None
        except ApiError:  # no usable form: no credentials (RFC 6750 section 3.1)
            return None
    return token


@operation(
    Operation(
        "UserInfo (OpenID Connect Core section 5.3); POST may carry the token as the"
        " form member access_token (RFC 6750 section 2.2)",
        form=BearerForm,
        responses={200: UserInfo, 401: BearerChallenge, 403: BearerChallenge},
        bearer=True,
        error_format="oauth",
        tags=("oauth",),
    )
)
async def userinfo(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    token = await _token(request)
    if token is None:
        return _challenge(app.app_id, 401, None, "")
    async with services.router.enter(app) as conn:
        keys = await services.keys.get(app, conn)
        try:
            claims = keys.verifier.verify(token)
        except VerificationError:
            return _challenge(app.app_id, 401, "invalid_token", "the access token is not valid")
        if claims.is_client_token:
            return _challenge(app.app_id, 401, "invalid_token", "a user's access token is required")
        if "openid" not in claims.scopes:
            return _challenge(app.app_id, 403, "insufficient_scope", "the openid scope is needed")
        try:
            sid = uuid.UUID(claims.sid or "")
        except ValueError:
            return _challenge(app.app_id, 401, "invalid_token", "the access token has no session")
        row = await sessions.active_session_user(conn, sid)
    if row is None or str(row["id"]) != claims.sub:
        return _challenge(app.app_id, 401, "invalid_token", "the session has ended")
    return json_response(claims_for(claims.sub, claims.scopes, row), headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [Route("/oauth/userinfo", userinfo, methods=["GET", "POST"])]
