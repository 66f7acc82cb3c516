"""Passkeys in the first-party API (issue 12; ceremonies in :mod:`oneauth.strategies.webauthn`).

    POST /v1/mfa/webauthn/registration/options    {} -> {"publicKey": creation options}
    POST /v1/mfa/webauthn/registration            {credential, name?} -> the stored factor
    POST /v1/mfa/webauthn/authentication/options  {flow_token} | {} -> {"publicKey": ...}

Registration takes a user access token of a first-party client whose sign-in is
recent (``auth_time`` within the app's ``mfa_change_max_age``, 10 minutes by
default): a stolen, hours-old token must not be able to add the thief's passkey.
The assertion of an authentication goes to ``POST /v1/login/mfa`` with
``factor: "webauthn"`` (the flow engine calls the strategy).
"""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    WebAuthnAuthenticationStart,
    WebAuthnCreationOptions,
    WebAuthnFactor,
    WebAuthnRegistration,
    WebAuthnRequestOptions,
)
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ApiError, InsufficientUserAuthentication
from oneauth.flows.common import authenticate_bearer
from oneauth.http.contract import Operation, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.identity.webauthn import Credential
from oneauth.services import Services
from oneauth.strategies import webauthn
from oneauth.verifier import AccessTokenClaims

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
INPUT_ERRORS = (413, 415, 422, 429)


def require_recent_sign_in(app: AppRecord, claims: AccessTokenClaims) -> None:
    """Changing factors needs a sign-in within ``mfa_change_max_age`` (RFC 9470 answer)."""
    max_age = policy_of(app).mfa_change_max_age
    if claims.auth_time is None or time.time() - claims.auth_time > max_age:
        raise InsufficientUserAuthentication(
            f"sign in again (within the last {max_age // 60} minutes) to change your passkeys",
            headers={
                "www-authenticate": f'Bearer realm="{app.app_id}",'
                ' error="insufficient_user_authentication",'
                f' error_description="a more recent sign-in is required", max_age={max_age}'
            },
        )


def factor_of(credential: Credential) -> WebAuthnFactor:
    return WebAuthnFactor(
        factor_id=str(credential.factor_id),
        kind="webauthn",
        name=credential.name,
        created_at=credential.created_at.isoformat(),
        last_used_at=credential.last_used_at.isoformat() if credential.last_used_at else None,
        backup_eligible=credential.backup_eligible,
        transports=list(credential.transports),
    )


@operation(
    Operation(
        "Options to register a passkey (navigator.credentials.create)",
        responses={200: WebAuthnCreationOptions},
        errors=(401, 403, 429),
        bearer=True,
        tags=("mfa",),
    )
)
async def registration_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(services, app, conn, bearer_token(request))
        require_recent_sign_in(app, caller.claims)
        assert caller.user is not None  # live_session
        options = await webauthn.begin_registration(
            conn,
            services.settings,
            app,
            user_id=uuid.UUID(caller.claims.sub),
            email=caller.user["email"],
        )
    return json_response(WebAuthnCreationOptions(publicKey=options), headers=NO_STORE)


@operation(
    Operation(
        "Register a passkey: verify the new credential and store it as a factor",
        body=WebAuthnRegistration,
        responses={201: WebAuthnFactor},
        errors=(401, 403, 409, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def register(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, WebAuthnRegistration)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    refused: ApiError | None = None
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(services, app, conn, bearer_token(request))
        require_recent_sign_in(app, caller.claims)
        try:
            stored = await webauthn.finish_registration(
                conn,
                services.settings,
                app,
                user_id=uuid.UUID(caller.claims.sub),
                credential=data.credential,
                name=data.name,
                meta=meta,
            )
        except ApiError as exc:
            refused = exc  # commit the consumed challenge (single use, W3), then answer
    if refused is not None:
        raise refused
    return json_response(factor_of(stored), status_code=201, headers=NO_STORE)


@operation(
    Operation(
        "Options to sign in with a passkey (navigator.credentials.get)",
        body=WebAuthnAuthenticationStart,
        responses={200: WebAuthnRequestOptions},
        errors=(400, 403, *INPUT_ERRORS),
        tags=("mfa",),
    )
)
async def authentication_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, WebAuthnAuthenticationStart)
    options, flow_token, expires_in = await webauthn.authentication_options(
        services, app, data.flow_token
    )
    body = WebAuthnRequestOptions(publicKey=options)
    if flow_token is not None and expires_in is not None:
        body.flow_token = flow_token
        body.expires_in = expires_in
    return json_response(body, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/mfa/webauthn/registration/options", registration_options, methods=["POST"]),
        Route("/v1/mfa/webauthn/registration", register, methods=["POST"]),
        Route("/v1/mfa/webauthn/authentication/options", authentication_options, methods=["POST"]),
    ]
