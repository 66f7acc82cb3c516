"""A user's remembered consents to third-party clients: list and revoke.

    GET    /v1/consents               the consents the user has given
    DELETE /v1/consents/{client_id}   withdraw one; ends that client's sessions

Only a user's access token issued to one of the app's first-party clients may
call these: a third-party client must not learn which other clients the user
has allowed, nor revoke them.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.account import service as account
from oneauth.api.models import Consent, Consents
from oneauth.errors import NotFound
from oneauth.flows.common import authenticate_bearer
from oneauth.http.contract import Operation, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.services import Services
from oneauth.verifier import AccessTokenClaims

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@operation(
    Operation(
        "The consents the signed-in user has given",
        responses={200: Consents},
        errors=(401, 403),
        bearer=True,
        tags=("consents",),
    )
)
async def list_consents(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:  # one unit: the token check and the read
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        items = await account.list_consents(conn, _uid(claims))
    return json_response(
        Consents(
            [
                Consent(
                    client_id=c.client_id,
                    client_name=c.client_name,
                    scopes=c.scopes,
                    granted_at=c.granted_at.isoformat(),
                    updated_at=c.updated_at.isoformat(),
                )
                for c in items
            ]
        ),
        headers=NO_STORE,
    )


def _uid(claims: AccessTokenClaims) -> uuid.UUID:
    return uuid.UUID(claims.sub)  # a user token's sub: checked against the session above


@operation(
    Operation(
        "Withdraw a consent; ends that client's sessions",
        responses={204: None},
        errors=(401, 403),
        bearer=True,
        tags=("consents",),
    )
)
async def revoke_consent(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    client_id = request.path_params["client_id"]
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:  # one unit: the token check and the change
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        # The same call as the hosted Security page's "Withdraw" (web/account.py).
        ended = await account.withdraw(conn, _uid(claims), client_id, meta)
    if ended is None:
        raise NotFound("no consent to this client")
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/consents", list_consents, methods=["GET"]),
        Route("/v1/consents/{client_id}", revoke_consent, methods=["DELETE"]),
    ]
