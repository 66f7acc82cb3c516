"""First-party JSON endpoints: a view parses, calls one flow, serializes."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    AppInfo,
    Credentials,
    Me,
    PasswordChange,
    TokenSet,
    VerificationRequired,
)
from oneauth.errors import InsufficientScope
from oneauth.flows import password
from oneauth.flows.common import authenticate_bearer
from oneauth.http.contract import Operation, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.oauth import userinfo
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@operation(Operation("Public facts about an app", responses={200: AppInfo}, tags=("app",)))
async def app_info(request: Request) -> Response:
    """Public facts about an app: what a first-party front end needs to start."""
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        client = await services.clients.default_client(conn, app.app_id)
        issuer = await services.issuer(app, conn)
    return json_response(
        AppInfo(
            app_id=app.app_id,
            display_name=app.display_name,
            issuer=issuer.issuer,
            audience=issuer.audience,
            default_client_id=client.client_id if client else None,
        )
    )


@operation(
    Operation(
        "Create an account with email and password",
        body=Credentials,
        responses={201: TokenSet, 202: VerificationRequired},
        errors=(403, 409, 413, 415, 422, 429),
        tags=("password",),
    )
)
async def signup(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, Credentials)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    status, body = await password.signup(services, app, data.email, data.password, meta)
    return JSONResponse(body, status_code=status, headers=NO_STORE)


@operation(
    Operation(
        "Sign in with email and password",
        body=Credentials,
        responses={200: TokenSet},
        errors=(401, 403, 413, 415, 422, 429),
        tags=("password",),
    )
)
async def login(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, Credentials)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    body = await password.login(services, app, data.email, data.password, meta)
    return JSONResponse(body, headers=NO_STORE)


@operation(
    Operation(
        "The signed-in user", responses={200: Me}, errors=(401, 403), bearer=True, tags=("user",)
    )
)
async def me(request: Request) -> Response:
    """The signed-in user. To a third-party client's token, exactly what UserInfo
    releases for its scopes (and nothing without ``openid``): a client granted
    ``openid`` alone learns no email here either (item 4)."""
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(
            services, app, conn, bearer_token(request), first_party_only=False
        )
    claims, row = caller.claims, caller.user
    assert row is not None  # live_session
    if not caller.first_party:
        if "openid" not in claims.scopes:
            raise InsufficientScope(
                "a third-party client's token needs the openid scope",
                headers={
                    "www-authenticate": f'Bearer realm="{app.app_id}", error="insufficient_scope"'
                },
            )
        return JSONResponse(userinfo.claims_for(claims.sub, claims.scopes, row), headers=NO_STORE)
    return json_response(
        Me(
            sub=claims.sub,
            app_id=app.app_id,
            email=row["email"],
            email_verified=row["email_verified"],
            created_at=row["created_at"].isoformat(),
            updated_at=row["updated_at"].isoformat(),
            scope=" ".join(sorted(claims.scopes)),
            sid=claims.sid or msgspec.UNSET,
        ),
        headers=NO_STORE,
    )


@operation(Operation("End this token's session", responses={204: None}, errors=(401,), bearer=True))
async def logout(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        # No live session needed: logging out of an ended session is a no-op (204).
        caller = await authenticate_bearer(
            services, app, conn, bearer_token(request), live_session=False
        )
    await password.logout(
        services, app, caller.claims, request_meta(request, app.app_id, services.ip_hash_key)
    )
    return Response(status_code=204, headers=NO_STORE)


@operation(
    Operation(
        "Change the signed-in user's password",
        body=PasswordChange,
        responses={204: None},
        errors=(401, 403, 413, 415, 422, 429),
        bearer=True,
        tags=("password",),
    )
)
async def change_password(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, PasswordChange)
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(services, app, conn, bearer_token(request))
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    await password.change_password(
        services, app, caller.claims, data.current_password, data.new_password, meta
    )
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/app", app_info, methods=["GET"]),
        Route("/v1/signup", signup, methods=["POST"]),
        Route("/v1/login", login, methods=["POST"]),
        Route("/v1/me", me, methods=["GET"]),
        Route("/v1/logout", logout, methods=["POST"]),
        Route("/v1/password", change_password, methods=["POST"]),
    ]
