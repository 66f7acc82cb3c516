"""The signed-in user's sign-ins: list and end one (issue 12).

    GET    /v1/sessions                the user's live sign-ins in this app
    DELETE /v1/sessions/{session_id}   end one (a browser sign-in with what it started)

Like /v1/consents, only a first-party client's user token may call these. The
hosted Security page (``/account``) makes the same calls (:mod:`oneauth.account`).
"""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.account import service as account
from oneauth.api.models import SignIn, SignIns
from oneauth.errors import NotFound
from oneauth.flows.common import authenticate_bearer, session_id_of
from oneauth.http.contract import Operation, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.services import Services
from oneauth.web import browser_session

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@operation(
    Operation(
        "The signed-in user's live sign-ins (browser and API sessions)",
        responses={200: SignIns},
        errors=(401, 403),
        bearer=True,
        tags=("sessions",),
    )
)
async def list_sessions(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        sid = session_id_of(claims)
        # A token of the code flow belongs to the browser sign-in it came from.
        current = await browser_session.of_token_session(conn, sid) or sid
        items = await account.list_sessions(conn, uuid.UUID(claims.sub), current=current)
    return json_response(
        SignIns(
            [
                SignIn(
                    id=str(i.id),
                    kind="browser" if i.kind == "browser" else "app",
                    client_id=i.client_id,
                    client_name=i.client_name,
                    amr=i.amr,
                    auth_time=i.auth_time.isoformat(),
                    created_at=i.created_at.isoformat(),
                    last_seen_at=i.last_seen_at.isoformat(),
                    user_agent=i.user_agent,
                    current=i.current,
                )
                for i in items
            ]
        ),
        headers=NO_STORE,
    )


@operation(
    Operation(
        "End one of the user's sign-ins and the tokens it started",
        responses={204: None},
        errors=(401, 403, 404),
        bearer=True,
        tags=("sessions",),
    )
)
async def end_session(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        target = uuid.UUID(request.path_params["session_id"])
    except ValueError:
        target = None
    async with services.router.enter(app) as conn:
        claims = (await authenticate_bearer(services, app, conn, bearer_token(request))).claims
        ended = target is not None and await account.end_session(
            conn, uuid.UUID(claims.sub), target, meta
        )
    if not ended:
        raise NotFound("no such live session of this user")
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/sessions", list_sessions, methods=["GET"]),
        Route("/v1/sessions/{session_id}", end_session, methods=["DELETE"]),
    ]
