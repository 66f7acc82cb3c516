"""Multi-factor sign-in and factor self-service (issue 12): views parse, call one flow.

POST   /v1/login/mfa              a second factor for a 403 mfa_required flow
GET    /v1/mfa                    the user's factors (every kind)
POST   /v1/mfa/totp               start a TOTP enrolment (Bearer, or an enrolment flow_token)
POST   /v1/mfa/totp/confirm       activate it with one code
POST   /v1/mfa/recovery-codes     a new set of recovery codes (the old set dies)
PATCH  /v1/mfa/{factor_id}        rename
DELETE /v1/mfa/{factor_id}        remove
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    FactorRename,
    MfaFactor,
    MfaFactors,
    MfaLogin,
    RecoveryCodes,
    TokenSet,
    TotpActivated,
    TotpConfirm,
    TotpEnrolment,
    TotpStart,
)
from oneauth.apps.policy import policy_of
from oneauth.errors import NotFound, ValidationFailed
from oneauth.flows import login, mfa
from oneauth.http.contract import Operation, convert, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
INPUT_ERRORS = (413, 415, 422, 429)


def _factor_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("no such factor") from None


def _listed(item: mfa.Listed) -> MfaFactor:
    f = item.factor
    return MfaFactor(
        id=str(f.id),
        kind=f.kind,  # type: ignore[arg-type]
        name=f.name,
        confirmed=f.confirmed,
        created_at=f.created_at.isoformat(),
        last_used_at=f.last_used_at.isoformat() if f.last_used_at else None,
        recovery_codes_left=msgspec.UNSET if item.codes_left is None else item.codes_left,
    )


@operation(
    Operation(
        "Complete a sign-in with a second factor (after 403 mfa_required)",
        body=MfaLogin,
        responses={200: TokenSet},
        errors=(400, 403, *INPUT_ERRORS),
        tags=("mfa",),
    )
)
async def login_mfa(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, MfaLogin)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    payload: dict[str, Any] = {"code": data.code, "assertion": data.assertion}
    body = await login.second_factor(services, app, data.flow_token, data.factor, payload, meta)
    return JSONResponse(body, headers=NO_STORE)


@operation(
    Operation(
        "The signed-in user's second factors and the app's MFA policy",
        responses={200: MfaFactors},
        errors=(401, 403),
        bearer=True,
        tags=("mfa",),
    )
)
async def list_factors(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    items, _ = await mfa.list_factors(services, app, bearer=bearer_token(request))
    policy = policy_of(app)
    return json_response(
        MfaFactors(
            factors=[_listed(i) for i in items], mfa=policy.mfa, allowed=list(policy.mfa_factors)
        ),
        headers=NO_STORE,
    )


@operation(
    Operation(
        "Start a TOTP enrolment: the seed and otpauth URI (shown once)",
        body=TotpStart,
        responses={201: TotpEnrolment},
        errors=(400, 401, 403, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def totp_start(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, TotpStart)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    started = await mfa.totp_begin(
        services,
        app,
        meta,
        bearer=None if data.flow_token else bearer_token(request),
        flow_token=data.flow_token,
        name=data.name,
    )
    return json_response(
        TotpEnrolment(
            factor_id=str(started.factor_id),
            secret=started.secret,
            otpauth_uri=started.otpauth_uri,
        ),
        status_code=201,
        headers=NO_STORE,
    )


@operation(
    Operation(
        "Activate a TOTP factor with one code; the first time, the recovery codes",
        body=TotpConfirm,
        responses={200: TotpActivated},
        errors=(400, 401, 403, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def totp_confirm(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, TotpConfirm)
    try:
        factor_id = uuid.UUID(data.factor_id)
    except ValueError:
        raise ValidationFailed("factor_id must be a UUID", extra={"field": "factor_id"}) from None
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    done = await mfa.totp_confirm(
        services,
        app,
        meta,
        factor_id=factor_id,
        code=data.code,
        bearer=None if data.flow_token else bearer_token(request),
        flow_token=data.flow_token,
    )
    tokens = done.issued.tokens if done.issued else None
    return json_response(
        TotpActivated(
            factor_id=str(done.factor_id),
            recovery_codes=msgspec.UNSET if done.recovery_codes is None else done.recovery_codes,
            tokens=msgspec.UNSET if tokens is None else convert(tokens, TokenSet),
        ),
        headers=NO_STORE,
    )


@operation(
    Operation(
        "A new set of ten recovery codes (shown once); the old set stops working",
        responses={200: RecoveryCodes},
        errors=(401, 403, 409, 429),
        bearer=True,
        tags=("mfa",),
    )
)
async def recovery_codes(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    codes = await mfa.regenerate_recovery_codes(services, app, meta, bearer=bearer_token(request))
    return json_response(RecoveryCodes(recovery_codes=codes), headers=NO_STORE)


@operation(
    Operation(
        "Rename a factor",
        body=FactorRename,
        responses={200: MfaFactor},
        errors=(401, 403, 404, *INPUT_ERRORS),
        bearer=True,
        tags=("mfa",),
    )
)
async def rename_factor(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    data = await json_body(request, FactorRename)
    factor_id = _factor_id(request.path_params["factor_id"])
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    item = await mfa.rename(
        services, app, meta, bearer=bearer_token(request), factor_id=factor_id, name=data.name
    )
    return json_response(_listed(item), headers=NO_STORE)


@operation(
    Operation(
        "Remove a factor (the last one takes the recovery codes along); mails the user",
        responses={204: None},
        errors=(401, 403, 404),
        bearer=True,
        tags=("mfa",),
    )
)
async def remove_factor(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    factor_id = _factor_id(request.path_params["factor_id"])
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    await mfa.remove(services, app, meta, bearer=bearer_token(request), factor_id=factor_id)
    return Response(status_code=204, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/login/mfa", login_mfa, methods=["POST"]),
        Route("/v1/mfa", list_factors, methods=["GET"]),
        Route("/v1/mfa/totp", totp_start, methods=["POST"]),
        Route("/v1/mfa/totp/confirm", totp_confirm, methods=["POST"]),
        Route("/v1/mfa/recovery-codes", recovery_codes, methods=["POST"]),
        Route("/v1/mfa/{factor_id}", rename_factor, methods=["PATCH"]),
        Route("/v1/mfa/{factor_id}", remove_factor, methods=["DELETE"]),
    ]
