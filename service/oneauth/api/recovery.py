"""First-party JSON endpoints for email flows: verification, reset, passwordless, email change.

Requests that send mail answer 202 with a ``flow_token`` whatever the address
(P4); the client keeps it to redeem a code (or a magic link) later. Links are
redeemed with ``token`` alone; codes with ``flow_token`` + ``code``.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.api.models import (
    EmailChange,
    EmailRequest,
    EmailVerified,
    FlowStarted,
    PasswordlessComplete,
    PasswordlessStart,
    Proof,
    ResetComplete,
    TokenSet,
)
from oneauth.errors import ValidationFailed
from oneauth.flows import email_change, mfa, passwordless, recovery, verification
from oneauth.flows.common import authenticate_bearer
from oneauth.http.contract import Operation, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import bearer_token, request_meta
from oneauth.identity import factors
from oneauth.services import Services

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
INPUT_ERRORS = (413, 415, 422, 429)


def _proof(data: Proof | ResetComplete) -> dict[str, str | None]:
    """A link token, or a flow token with a code."""
    if data.token is None and (data.flow_token is None or data.code is None):
        raise ValidationFailed("send token (from the link), or flow_token and code")
    return {"token": data.token, "flow_token": data.flow_token, "code": data.code}


def _context(request: Request) -> tuple[Services, Any, Any]:
    app = current_app(request)
    services = Services.of(request)
    return services, app, request_meta(request, app.app_id, services.ip_hash_key)


def _mail(summary: str, body: type[Any]) -> Operation:
    return Operation(
        summary, body=body, responses={202: FlowStarted}, errors=INPUT_ERRORS, tags=("email",)
    )


def _redeem(summary: str, body: type[Any], answer: Any) -> Operation:
    return Operation(
        summary,
        body=body,
        responses={200 if answer else 204: answer},
        errors=(400, *INPUT_ERRORS),
        tags=("email",),
    )


@operation(_mail("Send a verification mail (202 whatever the address)", EmailRequest))
async def verify_request(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, EmailRequest)
    body = await verification.request(
        services, app, data.email, meta, redirect_uri=data.redirect_uri
    )
    return json_response(FlowStarted(**body), 202, headers=NO_STORE)


@operation(_redeem("Prove the address with the link token or the code", Proof, EmailVerified))
async def verify_confirm(request: Request) -> Response:
    services, app, meta = _context(request)
    proof = _proof(await json_body(request, Proof))
    body = await verification.confirm(services, app, meta, **proof)
    return json_response(EmailVerified(**body), headers=NO_STORE)


@operation(_mail("Send a password reset mail (202 whatever the address)", EmailRequest))
async def reset_request(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, EmailRequest)
    body = await recovery.request(services, app, data.email, meta, redirect_uri=data.redirect_uri)
    return json_response(FlowStarted(**body), 202, headers=NO_STORE)


@operation(_redeem("Set a new password with the link token or the code", ResetComplete, None))
async def reset_complete(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, ResetComplete)
    proof = _proof(data)
    await recovery.complete(services, app, data.new_password, meta, **proof)
    # No tokens: a reset never signs in (MFA cannot be bypassed; see flows/recovery.py).
    return Response(status_code=204, headers=NO_STORE)


@operation(_mail("Send a sign-in link or code (202 whatever the address)", PasswordlessStart))
async def passwordless_start(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, PasswordlessStart)
    body = await passwordless.start(
        services, app, data.email, data.method, meta, redirect_uri=data.redirect_uri
    )
    return json_response(FlowStarted(**body), 202, headers=NO_STORE)


@operation(_redeem("Sign in with the link token or the code", PasswordlessComplete, TokenSet))
async def passwordless_complete(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, PasswordlessComplete)
    if (data.token is None) == (data.code is None):
        raise ValidationFailed("send either token (from the link) or code, with flow_token")
    body = await passwordless.complete(
        services, app, meta, flow_token=data.flow_token, token=data.token, code=data.code
    )
    return json_response(msgspec.convert(body, TokenSet), headers=NO_STORE)


@operation(
    Operation(
        "Ask to change the signed-in user's address: a mail to the new one",
        body=EmailChange,
        responses={202: FlowStarted},
        errors=(401, 403, 409, *INPUT_ERRORS),
        bearer=True,
        tags=("email",),
    )
)
async def email_change_request(request: Request) -> Response:
    services, app, meta = _context(request)
    data = await json_body(request, EmailChange)
    async with services.router.enter(app) as conn:
        caller = await authenticate_bearer(services, app, conn, bearer_token(request))
        items = await factors.of_user(conn, uuid.UUID(caller.claims.sub))
    refused = mfa.second_factor_refusal(app, caller.claims.amr, items)
    if refused is not None:
        raise refused
    body = await email_change.request(
        services,
        app,
        caller.claims,
        data.new_email,
        data.password,
        meta,
        redirect_uri=data.redirect_uri,
    )
    return json_response(FlowStarted(**body), 202, headers=NO_STORE)


@operation(_redeem("Confirm the new address with the link token or the code", Proof, EmailVerified))
async def email_change_confirm(request: Request) -> Response:
    services, app, meta = _context(request)
    body = await email_change.confirm(
        services, app, meta, **_proof(await json_body(request, Proof))
    )
    return json_response(EmailVerified(**body), headers=NO_STORE)


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
