"""The hosted pages' skin over the flow engine: second factor and enrolment (issue 12).

    POST /login/mfa     the second-factor form (a TOTP code or a recovery code)
    POST /login/enrol   the enrolment form (QR code, then one code; recovery codes once)

A first factor on a hosted page (the password form, a passwordless code or
link) runs :func:`first_factor`: the flow it starts is bound to this browser by
a nonce in an HttpOnly, app-path cookie (``oneauth_mfa_<app>``), and remembers
the sealed authorization request it serves. When the policy wants more, the
page shows the second-factor or the enrolment form, which post here with the
flow token; the browser session is issued only when the flow completes, and
then the authorization request continues as after any sign-in. CSRF as on
every hosted page (:mod:`oneauth.web.csrf`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import segno
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    ApiError,
    FlowExpired,
    InvalidCode,
    TooManyRequests,
    ValidationFailed,
)
from oneauth.flows import engine, login, mfa
from oneauth.http.contract import Operation, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.identity.users import User
from oneauth.oauth import organizations
from oneauth.oauth.authorize import AuthorizationRequest
from oneauth.services import Services
from oneauth.strategies import Payload, get, webauthn
from oneauth.web import browser_session, csrf
from oneauth.web.common import continue_url, error_page, expired, targets
from oneauth.web.render import redirect, render

NONCE_COOKIE = "oneauth_mfa_"  # + app_id

assert not NONCE_COOKIE.startswith((csrf.COOKIE_PREFIX, browser_session.COOKIE_PREFIX))

_PAGE = Operation(
    "",
    responses={200: str, 303: None},
    errors=(400, 403, 429),
    error_format="html",
    media_type="text/html",
    tags=("pages",),
)


def _nonce(request: Request, app: AppRecord) -> str | None:
    value = request.cookies.get(NONCE_COOKIE + app.app_id)
    return value if value and 20 <= len(value) <= 100 else None


def _binding(request: Request, app: AppRecord) -> str | None:
    nonce = _nonce(request, app)
    return engine.browser_binding(nonce) if nonce else None


@dataclass(frozen=True, slots=True)
class FirstFactor:
    outcome: engine.Issued | engine.Pending
    nonce: str


async def first_factor(
    request: Request,
    services: Services,
    app: AppRecord,
    factor: str,
    payload: Payload,
    meta: audit.RequestMeta,
    *,
    authz: AuthorizationRequest | None,
    method: str,
) -> FirstFactor:
    """Verify a first factor on a hosted page; a browser session, or the next step.

    Raises what the strategy raises (wrong password, bad code, throttled)."""
    strategy = get(factor)
    nonce = engine.new_browser_nonce()
    serves = {
        "client_id": authz.client_id if authz else None,
        "authorize": authz.seal(services.box, app.app_id) if authz else None,
    }
    start = engine.transient(kind="login", binding=engine.browser_binding(nonce), serves=serves)

    async def then(conn: Any, user: User, amr: list[str]) -> engine.Issued | engine.Pending:
        flow = await engine.satisfy(conn, start, strategy.name, amr, user.id)
        return await engine.complete(
            services,
            app,
            conn,
            flow,
            meta=meta,
            method=method,
            browser=request,
            org_requires_mfa=await _org_requires_mfa(conn, authz, user),
            details={"client_id": authz.client_id} if authz else None,
            user=user,
        )

    return FirstFactor(await strategy.verify(services, app, start, payload, meta, then), nonce)


async def _org_requires_mfa(conn: Any, authz: AuthorizationRequest | None, user: User) -> bool:
    """Issue 13: the request names an org (``organization_id``, ``organization:<slug>``)
    that requires MFA and the user is a member: the sign-in asks for the second factor
    at once (the authorization endpoint would step it up otherwise). An org the user
    picks later (bare ``organization``) is stepped up there."""
    if authz is None or not (authz.org_id or authz.org_slug):
        return False
    org = await organizations.member_org(conn, user.id, org_id=authz.org_id, slug=authz.org_slug)
    return org is not None and org.active and org.mfa_required


def _authz_of(
    services: Services, app: AppRecord, flow: engine.Flow | None
) -> AuthorizationRequest | None:
    sealed = flow.serves.get("authorize") if flow is not None else None
    return AuthorizationRequest.unseal(services.box, app.app_id, sealed) if sealed else None


def _set_session(
    response: Response, services: Services, app: AppRecord, issued: engine.Issued
) -> None:
    assert issued.browser_cookie is not None
    browser_session.set_cookie(
        response,
        services.settings,
        app.app_id,
        browser_session.cookie_name(app.app_id),
        issued.browser_cookie,
        policy_of(app).session_absolute_ttl,
    )
    browser_session.clear_cookie(response, services.settings, app.app_id, NONCE_COOKIE + app.app_id)


def _next_url(services: Services, app: AppRecord, issued: engine.Issued) -> str | None:
    authz = _authz_of(services, app, issued.flow)
    if authz is None:
        return None
    return continue_url(
        services.settings.issuer_for(app.app_id), authz.signed_in().seal(services.box, app.app_id)
    )


def signed_in(
    request: Request, services: Services, app: AppRecord, issued: engine.Issued
) -> Response:
    """The flow completed: continue the authorization request (or say so) with the
    new browser session's cookie."""
    next_url = _next_url(services, app, issued)
    if next_url is not None:
        response = redirect(next_url, 303)
    else:
        response = render(
            request,
            services,
            app,
            "recovery/done.html",
            {"title": "Signed in", "message": f"You are signed in to {app.display_name}."},
        )
    _set_session(response, services, app, issued)
    return response


def _form_targets(services: Services, app: AppRecord, flow: engine.Flow | None) -> tuple[str, ...]:
    authz = _authz_of(services, app, flow)
    return targets(authz.redirect_uri) if authz else ()


def factor_page(
    request: Request,
    services: Services,
    app: AppRecord,
    *,
    flow_token: str,
    factors: list[str],
    flow: engine.Flow | None = None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    # "Use your passkey" (web/passkey_pages.py): its script, where passkeys work here.
    passkeys = "webauthn" in factors and webauthn.offered_on_hosted_pages(services.settings, app)
    return render(
        request,
        services,
        app,
        "mfa.html",
        {"flow_token": flow_token, "factors": factors, "error": error, "passkeys": passkeys},
        status=status,
        headers=headers,
        form_targets=_form_targets(services, app, flow),
        scripts=passkeys,
    )


def qr_svg(uri: str) -> Markup:
    # segno writes plain SVG elements and attributes (no style, no script): the
    # page's CSP (no inline style) holds. The URI is the only input.
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator app")
    return Markup(svg)  # noqa: S704  (generated markup, not user input)


def enrol_page(
    request: Request,
    services: Services,
    app: AppRecord,
    *,
    flow_token: str,
    started: mfa.TotpStarted | None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``started``: the TOTP enrolment to show; None where the app offers passkeys only
    (the passkey part, enrol_passkey.html, is the WebAuthn page's)."""
    # "Use a passkey instead" (web/passkey_pages.py): its script, where passkeys work here.
    passkeys = webauthn.offered_on_hosted_pages(services.settings, app)
    context: dict[str, Any] = {
        "flow_token": flow_token,
        "allowed": list(policy_of(app).mfa_factors),
        "error": error,
        "passkeys": passkeys,
    }
    if started is not None:
        secret = started.secret
        context.update(
            factor_id=str(started.factor_id),
            secret_groups=[secret[i : i + 4] for i in range(0, len(secret), 4)],
            qr_svg=qr_svg(started.otpauth_uri),
        )
    return render(
        request,
        services,
        app,
        "enrol.html",
        context,
        status=status,
        headers=headers,
        scripts=passkeys,
    )


async def pending(
    request: Request,
    services: Services,
    app: AppRecord,
    step: engine.Pending,
    meta: audit.RequestMeta,
    nonce: str | None,
) -> Response:
    """The policy wants more after the first factor: the second-factor form, or
    the enrolment (a new TOTP seed for this flow)."""
    if isinstance(step.decision, engine.NeedEnrolment):
        started = None
        if "totp" in step.decision.allowed:
            started = await mfa.totp_begin(
                services,
                app,
                meta,
                bearer=None,
                flow_token=step.flow_token,
                binding=step.flow.binding,
            )
        response = enrol_page(request, services, app, flow_token=step.flow_token, started=started)
    else:
        response = factor_page(
            request, services, app, flow_token=step.flow_token, factors=step.factors, flow=step.flow
        )
    if nonce is not None:
        browser_session.set_cookie(
            response,
            services.settings,
            app.app_id,
            NONCE_COOKIE + app.app_id,
            nonce,
            engine.FLOW_TTL,
        )
    return response


async def _posted(
    request: Request, services: Services, app: AppRecord
) -> dict[str, str] | Response:
    try:
        form = await read_form(request)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    if not csrf.check(request, services.settings, app.app_id, form.get(csrf.FIELD)):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Go back to the"
            " application and start again.",
            code="csrf",
            status=403,
        )
    return form


@operation(replace(_PAGE, summary="Hosted page: the second-factor form"))
async def second_factor(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    form = await _posted(request, services, app)
    if isinstance(form, Response):
        return form
    binding = _binding(request, app)
    flow_token = form.get("flow_token", "")[:100]
    if binding is None or not flow_token:
        return expired(request, services, app)
    factor = form.get("factor", "totp")[:32]
    shown = [f for f in form.get("factors", "totp").split(",") if f][:5]
    meta = request_meta(request, app.app_id, services.ip_hash_key)

    def again(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return factor_page(
            request,
            services,
            app,
            flow_token=flow_token,
            factors=shown,
            error=message,
            status=status,
            headers=headers,
        )

    try:
        outcome = await login.continue_flow(
            services,
            app,
            flow_token,
            factor,
            {"code": form.get("code", "")[:40]},
            meta,
            binding=binding,
            browser=request,
        )
    except FlowExpired:
        return expired(request, services, app)
    except InvalidCode:
        return again("That code is not right. Try the newest code.", 400)
    except TooManyRequests as exc:
        return again("Too many wrong codes. Wait a few minutes, then try again.", 429, exc.headers)
    except ValidationFailed:
        return again("Choose one of the ways offered below.", 400)
    if isinstance(outcome, engine.Pending):
        return await pending(request, services, app, outcome, meta, None)
    return signed_in(request, services, app, outcome)


@operation(replace(_PAGE, summary="Hosted page: set up a second factor"))
async def enrol(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    form = await _posted(request, services, app)
    if isinstance(form, Response):
        return form
    binding = _binding(request, app)
    flow_token = form.get("flow_token", "")[:100]
    try:
        factor_id = uuid.UUID(form.get("factor_id", "")[:40])
    except ValueError:
        binding = None
    if binding is None or not flow_token:
        return expired(request, services, app)
    meta = request_meta(request, app.app_id, services.ip_hash_key)

    async def again(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
        assert binding is not None
        started = await mfa.totp_pending(
            services, app, flow_token=flow_token, binding=binding, factor_id=factor_id
        )
        return enrol_page(
            request,
            services,
            app,
            flow_token=flow_token,
            started=started,
            error=message,
            status=status,
            headers=headers,
        )

    try:
        try:
            done = await mfa.totp_confirm(
                services,
                app,
                meta,
                factor_id=factor_id,
                code=form.get("code", "")[:40],
                bearer=None,
                flow_token=flow_token,
                binding=binding,
                browser=request,
            )
        except InvalidCode:
            return await again(
                "That code is not right. Check the device's clock and try again.", 400
            )
        except TooManyRequests as exc:
            return await again("Too many wrong codes. Wait a few minutes.", 429, exc.headers)
    except FlowExpired:
        return expired(request, services, app)
    if done.issued is None:
        return expired(request, services, app)
    response = render(
        request,
        services,
        app,
        "codes.html",
        {"codes": done.recovery_codes or [], "next_url": _next_url(services, app, done.issued)},
    )
    _set_session(response, services, app, done.issued)
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/login/mfa", second_factor, methods=["POST"]),
        Route("/login/enrol", enrol, methods=["POST"]),
    ]
