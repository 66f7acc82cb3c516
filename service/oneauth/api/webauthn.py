"""Passkeys in the first-party API (issue 12; ceremonies in :mod:`oneauth.strategies.webauthn`).

    POST /v1/mfa/webauthn/registration/options    {} -> {"publicKey": creation options}
    POST /v1/mfa/webauthn/registration            {credential, name?} -> the stored factor
    POST /v1/mfa/webauthn/authentication/options  {flow_token} | {} -> {"publicKey": ...}

Registration takes a user access token of a first-party client whose sign-in is
recent (``auth_time`` within the app's ``mfa_change_max_age``, 10 minutes by
default; once the user has a second factor, a sign-in that used it): a stolen,
hours-old token must not be able to add the thief's passkey. Or the
``flow_token`` of a 403 ``mfa_enrollment_required``: then the passkey is the
first factor and registering it completes that sign-in (``tokens``).
The assertion of an authentication goes to ``POST /v1/login/mfa`` with
``factor: "webauthn"`` (the flow engine calls the strategy).
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    TokenSet,
    WebAuthnAuthenticationStart,
    WebAuthnCreationOptions,
    WebAuthnFactor,
    WebAuthnRegistered,
    WebAuthnRegistration,
    WebAuthnRegistrationStart,
    WebAuthnRequestOptions,
)
from oneauth.flows import passkeys
from oneauth.http.contract import Operation, convert, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.identity.webauthn import Credential
from oneauth.services import Services
from oneauth.strategies import webauthn

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
INPUT_ERRORS = (413, 415, 422, 429)


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
        body=WebAuthnRegistrationStart,
        responses={200: WebAuthnCreationOptions},
        errors=(400, 401, 403, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def registration_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, WebAuthnRegistrationStart)
    authorize = passkeys.by_token(
        services, app, bearer=bearer_token(request), flow_token=data.flow_token
    )
    options = await passkeys.registration_options(services, app, authorize)
    return json_response(WebAuthnCreationOptions(publicKey=options), headers=NO_STORE)


@operation(
    Operation(
        "Register a passkey: verify the new credential and store it as a factor",
        body=WebAuthnRegistration,
        responses={201: WebAuthnRegistered},
        errors=(400, 401, 403, 409, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def register(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, WebAuthnRegistration)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    authorize = passkeys.by_token(
        services, app, bearer=bearer_token(request), flow_token=data.flow_token
    )
    done = await passkeys.register(
        services, app, meta, authorize, credential=data.credential, name=data.name
    )
    return json_response(registered(done), status_code=201, headers=NO_STORE)


def registered(done: passkeys.Registered) -> WebAuthnRegistered:
    factor = factor_of(done.credential)
    tokens = done.issued.tokens if done.issued else None
    return WebAuthnRegistered(
        **{f: getattr(factor, f) for f in factor.__struct_fields__},
        recovery_codes=msgspec.UNSET if done.recovery_codes is None else done.recovery_codes,
        tokens=msgspec.UNSET if tokens is None else convert(tokens, TokenSet),
    )


@operation(
    Operation(
        "Options to sign in with a passkey (navigator.credentials.get)",
        body=WebAuthnAuthenticationStart,
        responses={200: WebAuthnRequestOptions},
        errors=(400, 403, 429, *INPUT_ERRORS),
        tags=("mfa",),
    )
)
async def authentication_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, WebAuthnAuthenticationStart)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    options, flow_token, expires_in = await webauthn.authentication_options(
        services, app, data.flow_token, meta
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
