"""OAuth HTTP endpoints of one app: token, revocation, introspection.

Errors here use RFC 6749 section 5.2 bodies (``oneauth.oauth.errors``).
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth import metrics
from oneauth.api.models import TokenSet
from oneauth.db.groupcommit import UNOPENED, NeedsConnection
from oneauth.errors import ApiError
from oneauth.http.contract import Operation, form_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import request_meta
from oneauth.oauth import authorize
from oneauth.oauth import token as grants
from oneauth.oauth.clientauth import authenticate_client
from oneauth.oauth.errors import (
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    UnsupportedGrantType,
    oauth_error_response,
)
from oneauth.oauth.models import Introspection, TokenForm, TokenForm7009
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
M = TypeVar("M", bound=msgspec.Struct)
# invalid_request/invalid_scope/... (400), invalid_client (401); the app gate's own
# 404 and 503 are problem details, before any OAuth endpoint runs.
OAUTH_ERRORS = (400, 401)


async def _form(request: Request, model: type[M]) -> M:
    """The form decoded once into ``model``; the grant handlers and client
    authentication read nothing else. Whatever the decode refuses (wrong content
    type, too large, a repeated or overlong parameter) is RFC 6749's
    ``invalid_request``, not a problem document."""
    try:
        return await form_body(request, model)
    except ApiError as exc:
        raise InvalidRequest(exc.detail) from None


def _declare(summary: str, form: type[msgspec.Struct], answer: object) -> Operation:
    return Operation(
        summary,
        form=form,
        responses={200: answer},
        errors=OAUTH_ERRORS,
        error_format="oauth",
        tags=("oauth",),
    )


@operation(_declare("Token endpoint (RFC 6749 section 3.2)", TokenForm, TokenSet))
async def token(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    params = await _form(request, TokenForm)
    grant_type = params.grant_type
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    handlers = {
        "refresh_token": grants.refresh_grant,
        "client_credentials": grants.client_credentials_grant,
        "authorization_code": authorize.authorization_code_grant,
    }
    extra = getattr(request.app.state, "extra_grants", {})
    handler = handlers.get(grant_type or "") or extra.get(grant_type or "")
    try:
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        if handler is None:
            raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
        result: TokenSet | OAuthError | None = None
        if handler is grants.client_credentials_grant:
            # Client and keys cached, no org to read: no unit of its own, the
            # audit row in a group commit. Anything that reaches for the
            # database first (nothing sent yet) is done again in a unit below.
            with contextlib.suppress(NeedsConnection):
                client = await authenticate_client(
                    request, params, UNOPENED, services.clients, app.app_id
                )
                result = await handler(services, app, UNOPENED, client, params, meta)
        if result is None:
            async with services.router.enter(app) as conn:
                client = await authenticate_client(
                    request, params, conn, services.clients, app.app_id
                )
                result = await handler(services, app, conn, client, params, meta)
    except OAuthError as exc:
        metrics.count_grant(grant_type, exc.error)
        raise
    if isinstance(result, OAuthError):
        metrics.count_grant(grant_type, result.error)
        return oauth_error_response(result)
    metrics.count_grant(grant_type, "success")
    return json_response(result, headers=NO_STORE)


@operation(_declare("Revocation (RFC 7009)", TokenForm7009, None))
async def revoke(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    params = await _form(request, TokenForm7009)
    value = params.token
    if not value:
        raise InvalidRequest("token is required")
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:
        client = await authenticate_client(request, params, conn, services.clients, app.app_id)
        await grants.revoke(services, app, conn, client, value, meta)
    return Response(status_code=200, headers=NO_STORE)


@operation(_declare("Introspection (RFC 7662)", TokenForm7009, Introspection))
async def introspect(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    params = await _form(request, TokenForm7009)
    value = params.token
    if not value:
        raise InvalidRequest("token is required")
    async with services.router.enter(app) as conn:
        await authenticate_client(
            request, params, conn, services.clients, app.app_id, confidential_only=True
        )
        body = await grants.introspect(services, app, conn, value)
    return json_response(body, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/oauth/introspect", introspect, methods=["POST"]),
    ]


__all__ = ["InvalidGrant", "routes"]
