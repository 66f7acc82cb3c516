"""First-party JSON endpoints for email flows: verification, reset, passwordless, email change.

Requests that send mail answer 202 with a ``flow_token`` whatever the address
(P4); the client keeps it to redeem a code (or a magic link) later. Links are
redeemed with ``token`` alone; codes with ``flow_token`` + ``code``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oneauth.errors import ValidationFailed
from oneauth.flows import email_change, passwordless, recovery, verification
from oneauth.flows.common import authenticate_bearer
from oneauth.flows.password import MAX_PASSWORD_INPUT
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, read_json, request_meta, require_str
from oneauth.identity.one_time import MAX_SECRET_INPUT
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
MAX_URI = 2048


def _optional(data: dict[str, Any], field: str, max_length: int) -> str | None:
    if data.get(field) is None:
        return None
    return require_str(data, field, max_length=max_length)


def _proof(data: dict[str, Any]) -> dict[str, str | None]:
    """A link token, or a flow token with a code."""
    proof = {
        "token": _optional(data, "token", MAX_SECRET_INPUT),
        "flow_token": _optional(data, "flow_token", MAX_SECRET_INPUT),
        "code": _optional(data, "code", 32),
    }
    if proof["token"] is None and (proof["flow_token"] is None or proof["code"] is None):
        raise ValidationFailed("send token (from the link), or flow_token and code")
    return proof


async def _start(request: Request) -> tuple[Services, Any, dict[str, Any], Any]:
    app = current_app(request)
    services = Services.of(request)
    data = await read_json(request)
    return services, app, data, request_meta(request, app.app_id, services.ip_hash_key)


async def verify_request(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    body = await verification.request(
        services,
        app,
        require_str(data, "email", max_length=320),
        meta,
        redirect_uri=_optional(data, "redirect_uri", MAX_URI),
    )
    return JSONResponse(body, status_code=202, headers=NO_STORE)


async def verify_confirm(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    body = await verification.confirm(services, app, meta, **_proof(data))
    return JSONResponse(body, headers=NO_STORE)


async def reset_request(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    body = await recovery.request(
        services,
        app,
        require_str(data, "email", max_length=320),
        meta,
        redirect_uri=_optional(data, "redirect_uri", MAX_URI),
    )
    return JSONResponse(body, status_code=202, headers=NO_STORE)


async def reset_complete(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    proof = _proof(data)
    new_password = require_str(data, "new_password", max_length=MAX_PASSWORD_INPUT)
    await recovery.complete(services, app, new_password, meta, **proof)
    # No tokens: a reset never signs in (MFA cannot be bypassed; see flows/recovery.py).
    return Response(status_code=204, headers=NO_STORE)


async def passwordless_start(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    body = await passwordless.start(
        services,
        app,
        require_str(data, "email", max_length=320),
        require_str(data, "method", max_length=10),
        meta,
        redirect_uri=_optional(data, "redirect_uri", MAX_URI),
    )
    return JSONResponse(body, status_code=202, headers=NO_STORE)


async def passwordless_complete(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    flow_token = require_str(data, "flow_token", max_length=MAX_SECRET_INPUT)
    token = _optional(data, "token", MAX_SECRET_INPUT)
    code = _optional(data, "code", 32)
    if (token is None) == (code is None):
        raise ValidationFailed("send either token (from the link) or code, with flow_token")
    body = await passwordless.complete(
        services, app, meta, flow_token=flow_token, token=token, code=code
    )
    return JSONResponse(body, headers=NO_STORE)


async def email_change_request(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    new_email = require_str(data, "new_email", max_length=320)
    password = require_str(data, "password", max_length=MAX_PASSWORD_INPUT)
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(services, app, conn, bearer_token(request))
    body = await email_change.request(
        services,
        app,
        caller.claims,
        new_email,
        password,
        meta,
        redirect_uri=_optional(data, "redirect_uri", MAX_URI),
    )
    return JSONResponse(body, status_code=202, headers=NO_STORE)


async def email_change_confirm(request: Request) -> Response:
    services, app, data, meta = await _start(request)
    body = await email_change.confirm(services, app, meta, **_proof(data))
    return JSONResponse(body, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/email/verify/request", verify_request, methods=["POST"]),
        Route("/v1/email/verify", verify_confirm, methods=["POST"]),
        Route("/v1/password/reset/request", reset_request, methods=["POST"]),
        Route("/v1/password/reset", reset_complete, methods=["POST"]),
        Route("/v1/passwordless/start", passwordless_start, methods=["POST"]),
        Route("/v1/passwordless/complete", passwordless_complete, methods=["POST"]),
        Route("/v1/email/change", email_change_request, methods=["POST"]),
        Route("/v1/email/change/confirm", email_change_confirm, methods=["POST"]),
    ]
