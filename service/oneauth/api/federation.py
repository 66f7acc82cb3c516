"""First-party API of federation (issue 14): the hand-off code and linked identities.

    POST   /v1/federation/complete        {code} -> the token set (one-time, 2 minutes)
    GET    /v1/identities                 the user's linked upstream identities
    DELETE /v1/identities/{identity_id}   unlink one (never the last way to sign in)

The hosted side (start, callback, link confirmation) is :mod:`oneauth.web.federation_pages`.
"""

from __future__ import annotations

import uuid

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import FederationComplete, LinkedIdentities, LinkedIdentity, TokenSet
from oneauth.errors import Conflict, NotFound
from oneauth.flows import federation
from oneauth.flows.common import authenticate_bearer
from oneauth.http.contract import Operation, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@operation(
    Operation(
        "Exchange the one-time code of a first-party federation sign-in for the token set",
        body=FederationComplete,
        responses={200: TokenSet},
        errors=(400, 403, 413, 415, 422),
        tags=("federation",),
    )
)
async def complete(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, FederationComplete)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    tokens = await federation.complete(services, app, data.code, meta)
    return json_response(msgspec.convert(tokens, TokenSet), headers=NO_STORE)


@operation(
    Operation(
        "The signed-in user's linked upstream identities",
        responses={200: LinkedIdentities},
        errors=(401, 403),
        bearer=True,
        tags=("federation",),
    )
)
async def list_identities(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        items = await federation.linked(conn, uuid.UUID(claims.sub))
    return json_response(
        LinkedIdentities([msgspec.convert(i, LinkedIdentity) for i in items]), headers=NO_STORE
    )


@operation(
    Operation(
        "Unlink one of the user's upstream identities (refused when it is the last way to sign in)",
        responses={204: None},
        errors=(401, 403, 404, 409),
        bearer=True,
        tags=("federation",),
    )
)
async def unlink(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        target: uuid.UUID | None = uuid.UUID(request.path_params["identity_id"])
    except ValueError:
        target = None
    async with services.router.enter(app) as conn:
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        user_id = uuid.UUID(claims.sub)
        refused = await federation.unlink_refusal(conn, app, user_id, claims.auth_time, claims.amr)
        if refused is not None:
            raise refused
        result = await federation.unlink(conn, app, user_id, target, meta)
    if result == "not_found":
        raise NotFound("no such linked identity of this user")
    if result == "last":
        raise Conflict(
            "this identity is the last way to sign in: set a password or link another"
            " provider first"
        )
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/federation/complete", complete, methods=["POST"]),
        Route("/v1/identities", list_identities, methods=["GET"]),
        Route("/v1/identities/{identity_id}", unlink, methods=["DELETE"]),
    ]
