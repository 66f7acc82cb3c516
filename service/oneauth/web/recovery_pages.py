"""Hosted pages of the email flows, per app (they extend the login pages' ``base.html``).

    GET|POST /recover        ask for a reset; then enter the code and a new password
    GET|POST /reset          a reset link lands here: choose a new password
    GET|POST /verify         an email verification link lands here
    GET|POST /email/confirm  an email change link lands here
    GET|POST /signin/code    passwordless sign-in with a one-time code
    GET|POST /signin/link    passwordless sign-in with a magic link

A link's GET only shows a button; the POST uses the token (mail scanners that
fetch links burn nothing). Every form has a CSRF token; every page is no-store
with a CSP without inline script or style (``oneauth.web.render``); redirects
after a POST are 303. The flow token that binds a code or magic link to this
browser lives in an HttpOnly cookie scoped to the app's path; the sealed
authorization request (``flow``) that sent the user here rides along so that
signing in by email continues the OAuth flow.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    ApiError,
    FeatureDisabled,
    InvalidLinkOrCode,
    TooManyRequests,
    ValidationFailed,
    WeakPasswordError,
)
from oneauth.flows import email_change, engine, passwordless, recovery, verification
from oneauth.flows.password import MAX_PASSWORD_INPUT
from oneauth.http.contract import Operation, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.identity.one_time import MAX_SECRET_INPUT
from oneauth.oauth.authorize import AuthorizationRequest
from oneauth.services import Services
from oneauth.web import browser_session, csrf, signin
from oneauth.web.common import continue_url, error_page
from oneauth.web.render import render

FLOW_COOKIE = "oneauth_mailflow_"  # + app_id: the flow token of a code / magic link
RESUME_COOKIE = "oneauth_mailresume_"  # + app_id: the sealed OAuth request, for a magic link
FLOW_COOKIE_AGE = 30 * 60
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,128}")

assert not FLOW_COOKIE.startswith((csrf.COOKIE_PREFIX, browser_session.COOKIE_PREFIX))


# --- helpers ----------------------------------------------------------------------------


def _issuer(services: Services, app: AppRecord) -> str:
    return services.settings.issuer_for(app.app_id)


def _authz(services: Services, app: AppRecord, sealed: str | None) -> str | None:
    """The sealed OAuth request if it is genuine (and this app's), else None."""
    if not sealed:
        return None
    return sealed if AuthorizationRequest.unseal(services.box, app.app_id, sealed) else None


def _next(services: Services, app: AppRecord, flow: str | None) -> tuple[str | None, str]:
    if flow:
        return continue_url(_issuer(services, app), flow), "Continue"
    return None, ""


def _page(
    request: Request,
    services: Services,
    app: AppRecord,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> Response:
    return render(request, services, app, f"recovery/{template}", context, status=status)


def _cookie(request: Request, name: str, app: AppRecord) -> str | None:
    value = request.cookies.get(name + app.app_id)
    return value if value and len(value) <= 4096 else None


def _set(response: Response, services: Services, app: AppRecord, name: str, value: str) -> None:
    browser_session.set_cookie(
        response, services.settings, app.app_id, name + app.app_id, value, FLOW_COOKIE_AGE
    )


def _clear(response: Response, services: Services, app: AppRecord, *names: str) -> None:
    for name in names:
        browser_session.clear_cookie(response, services.settings, app.app_id, name + app.app_id)


async def _form(request: Request, services: Services, app: AppRecord) -> dict[str, str] | Response:
    try:
        form = await read_form(request)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    if not csrf.check(request, services.settings, app.app_id, form.get(csrf.FIELD)):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Start again.",
            code="csrf",
            status=403,
        )
    return form


def _token_param(request: Request) -> str | None:
    token = request.query_params.get("token")
    return token if token and _TOKEN.fullmatch(token) else None


def _bad_link(request: Request, services: Services, app: AppRecord) -> Response:
    return error_page(
        request,
        services,
        app,
        "This link or code is not valid any more: it was used, it expired, or it was made"
        " for another browser. Ask for a new one.",
        title="This link does not work",
        code="invalid_link_or_code",
    )


# --- password reset -----------------------------------------------------------------


def _recover_form(
    request: Request,
    services: Services,
    app: AppRecord,
    flow: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status: int = 200,
) -> Response:
    return _page(
        request,
        services,
        app,
        "email.html",
        {
            "title": "Reset your password",
            "lead": "Enter your email address. If it has an account, we send a link and a code.",
            "action": "recover",
            "button": "Send reset email",
            "flow": flow,
            "email": email,
            "error": error,
            "back_url": _next(services, app, flow)[0],
        },
        status=status,
    )


@operation(
    Operation(
        "Hosted page: ask for a reset, then enter the code and a new password",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def recover(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if request.method == "GET":
        return _recover_form(
            request, services, app, _authz(services, app, request.query_params.get("flow"))
        )
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    flow = _authz(services, app, form.get("flow"))
    email = form.get("email", "").strip()[:320]
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        started = await recovery.request(services, app, email, meta)
    except ValidationFailed:
        return _recover_form(
            request,
            services,
            app,
            flow,
            error="Enter a valid email address.",
            email=email,
            status=400,
        )
    except TooManyRequests:
        return _recover_form(
            request,
            services,
            app,
            flow,
            error="Too many emails asked for. Wait a few minutes.",
            email=email,
            status=429,
        )
    response = _code_form(request, services, app, flow, "Check your email")
    _set(response, services, app, FLOW_COOKIE, started["flow_token"])
    return response


def _code_form(
    request: Request,
    services: Services,
    app: AppRecord,
    flow: str | None,
    title: str,
    *,
    token: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    lead = (
        None
        if token
        else "If the address has an account, we sent a link and a 6-digit code. Open the link,"
        " or enter the code here with your new password."
    )
    return _page(
        request,
        services,
        app,
        "form.html",
        {
            "title": title,
            "lead": lead,
            "action": "reset",
            "flow": flow,
            "token": token,
            "ask_code": token is None,
            "ask_password": True,
            "button": "Set new password",
            "error": error,
        },
        status=status,
    )


@operation(
    Operation(
        "Hosted page: a reset link lands here; choose a new password",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def reset(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if request.method == "GET":
        token = _token_param(request)
        if token is None:
            return _bad_link(request, services, app)
        return _code_form(request, services, app, None, "Choose a new password", token=token)
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    flow = _authz(services, app, form.get("flow"))
    token = form.get("token") or None
    new_password = form.get("new_password", "")
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    title = "Choose a new password" if token else "Check your email"

    def again(message: str, status: int) -> Response:
        return _code_form(
            request, services, app, flow, title, token=token, error=message, status=status
        )

    if not new_password or len(new_password) > MAX_PASSWORD_INPUT:
        return again("Enter a new password.", 400)
    if token is not None and len(token) > MAX_SECRET_INPUT:
        return _bad_link(request, services, app)
    try:
        await recovery.complete(
            services,
            app,
            new_password,
            meta,
            token=token,
            flow_token=None if token else _cookie(request, FLOW_COOKIE, app),
            code=None if token else form.get("code", "")[:32],
        )
    except WeakPasswordError as exc:
        return again(exc.detail, 400)
    except InvalidLinkOrCode:
        if token:
            return _bad_link(request, services, app)
        return again("That code is not right, or it expired. Check the email or start again.", 400)
    next_url, _ = _next(services, app, flow)
    response = _page(
        request,
        services,
        app,
        "done.html",
        {
            "title": "Password changed",
            # A reset never signs in (MFA can't be bypassed); every session ended.
            "message": "Your password is changed and you are signed out everywhere."
            " Sign in with the new password.",
            "next_url": next_url,
            "next_label": "Sign in",
        },
    )
    _clear(response, services, app, FLOW_COOKIE)
    return response


# --- verification and email change links --------------------------------------------


def _link_landing(
    request: Request, services: Services, app: AppRecord, action: str, title: str, button: str
) -> Response:
    token = _token_param(request)
    if token is None:
        return _bad_link(request, services, app)
    return _page(
        request,
        services,
        app,
        "form.html",
        {"title": title, "action": action, "token": token, "button": button},
    )


@operation(
    Operation(
        "Hosted page: an email verification link lands here",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def verify(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if request.method == "GET":
        return _link_landing(
            request, services, app, "verify", "Confirm your email address", "Confirm"
        )
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        # The flow cookie, if this browser holds the flow of the request that sent
        # the link: then the proof keeps the password that request's signup set (P7).
        done = await verification.confirm(
            services,
            app,
            meta,
            token=form.get("token", "")[:200],
            flow_token=_cookie(request, FLOW_COOKIE, app),
        )
    except InvalidLinkOrCode:
        return _bad_link(request, services, app)
    message = "Thank you. You can close this page."
    if done["password_cleared"]:
        message = (
            "Thank you. A password set for this address before you confirmed it no longer"
            " works: to sign in with a password, choose one (\u201cForgot password\u201d)."
        )
    return _page(
        request,
        services,
        app,
        "done.html",
        {
            "title": "Email address confirmed",
            "message": message,
            "next_url": f"{_issuer(services, app)}/recover" if done["password_cleared"] else None,
            "next_label": "Choose a password",
        },
    )


@operation(
    Operation(
        "Hosted page: an email change link lands here",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def confirm_email_change(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if request.method == "GET":
        return _link_landing(
            request, services, app, "email/confirm", "Confirm your new email address", "Confirm"
        )
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        done = await email_change.confirm(services, app, meta, token=form.get("token", "")[:200])
    except (InvalidLinkOrCode, ApiError):
        return _bad_link(request, services, app)
    return _page(
        request,
        services,
        app,
        "done.html",
        {
            "title": "Email address changed",
            "message": f"Your account now uses {done['email']}.",
        },
    )


# --- passwordless --------------------------------------------------------------------


def _signin_email_form(
    request: Request,
    services: Services,
    app: AppRecord,
    method: str,
    flow: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status: int = 200,
) -> Response:
    is_code = method == "code"
    return _page(
        request,
        services,
        app,
        "email.html",
        {
            "title": "Sign in with email",
            "lead": "We email you a 6-digit code." if is_code else "We email you a sign-in link.",
            "action": f"signin/{method}",
            "button": "Email me a code" if is_code else "Email me a link",
            "flow": flow,
            "email": email,
            "error": error,
            "back_url": _next(services, app, flow)[0],
        },
        status=status,
    )


def _disabled(request: Request, services: Services, app: AppRecord) -> Response | None:
    if policy_of(app).passwordless:
        return None
    return error_page(
        request,
        services,
        app,
        "Signing in by email is not enabled for this application.",
        title="Not available",
        code=FeatureDisabled.code,
        status=403,
    )


async def _start(
    request: Request, services: Services, app: AppRecord, method: str, form: dict[str, str]
) -> Response:
    flow = _authz(services, app, form.get("flow"))
    email = form.get("email", "").strip()[:320]
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        started = await passwordless.start(services, app, email, method, meta)
    except ValidationFailed:
        return _signin_email_form(
            request,
            services,
            app,
            method,
            flow,
            error="Enter a valid email address.",
            email=email,
            status=400,
        )
    except TooManyRequests:
        return _signin_email_form(
            request,
            services,
            app,
            method,
            flow,
            error="Too many emails asked for. Wait a few minutes.",
            email=email,
            status=429,
        )
    if method == "code":
        response = _page(
            request,
            services,
            app,
            "form.html",
            {
                "title": "Check your email",
                "lead": "If the address has an account, we sent a 6-digit code. Enter it here.",
                "action": "signin/code",
                "flow": flow,
                "ask_code": True,
                "button": "Sign in",
                "back_url": f"{_issuer(services, app)}/signin/code",
            },
        )
    else:
        response = _page(
            request,
            services,
            app,
            "done.html",
            {
                "title": "Check your email",
                "message": "If the address has an account, we sent a sign-in link. Open it in"
                " this browser within 10 minutes.",
            },
        )
        if flow:
            _set(response, services, app, RESUME_COOKIE, flow)
    _set(response, services, app, FLOW_COOKIE, started["flow_token"])
    return response


async def _finish(
    request: Request,
    services: Services,
    app: AppRecord,
    flow: str | None,
    *,
    token: str | None,
    code: str | None,
) -> Response:
    flow_token = _cookie(request, FLOW_COOKIE, app)
    if flow_token is None:
        return _bad_link(request, services, app)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    authz = AuthorizationRequest.unseal(services.box, app.app_id, flow) if flow else None
    # Through the flow engine (issue 12): a browser session, or the second-factor
    # or enrolment page when the app's policy asks for more.
    try:
        if token:
            payload = {"flow_token": flow_token, "token": token}
            factor, method = "magic_link", "magic_link"
        else:
            payload = {"flow_token": flow_token, "code": code or ""}
            factor, method = "email_code", "email_otp"
        started = await signin.first_factor(
            request, services, app, factor, payload, meta, authz=authz, method=method
        )
    except InvalidLinkOrCode:
        if token:
            return _bad_link(request, services, app)
        return _page(
            request,
            services,
            app,
            "form.html",
            {
                "title": "Check your email",
                "action": "signin/code",
                "flow": flow,
                "ask_code": True,
                "button": "Sign in",
                "error": "That code is not right, or it expired.",
                "back_url": f"{_issuer(services, app)}/signin/code",
            },
            status=400,
        )
    if isinstance(started.outcome, engine.Pending):
        response = await signin.pending(
            request, services, app, started.outcome, meta, started.nonce
        )
    else:
        response = signin.signed_in(request, services, app, started.outcome)
    _clear(response, services, app, FLOW_COOKIE, RESUME_COOKIE)
    return response


@operation(
    Operation(
        "Hosted page: passwordless sign-in with a one-time code",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def signin_code(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if (off := _disabled(request, services, app)) is not None:
        return off
    if request.method == "GET":
        flow = _authz(services, app, request.query_params.get("flow"))
        return _signin_email_form(request, services, app, "code", flow)
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    if "code" in form:
        flow = _authz(services, app, form.get("flow"))
        return await _finish(request, services, app, flow, token=None, code=form["code"][:32])
    return await _start(request, services, app, "code", form)


@operation(
    Operation(
        "Hosted page: passwordless sign-in with a magic link",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def signin_link(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    if (off := _disabled(request, services, app)) is not None:
        return off
    if request.method == "GET":
        if "token" in request.query_params:
            return _link_landing(
                request, services, app, "signin/link", f"Sign in to {app.display_name}", "Sign in"
            )
        flow = _authz(services, app, request.query_params.get("flow"))
        return _signin_email_form(request, services, app, "link", flow)
    form = await _form(request, services, app)
    if isinstance(form, Response):
        return form
    if form.get("token"):
        flow = _authz(services, app, _cookie(request, RESUME_COOKIE, app))
        return await _finish(request, services, app, flow, token=form["token"][:200], code=None)
    return await _start(request, services, app, "link", form)


def routes() -> list[BaseRoute]:
    both = ["GET", "POST"]
    return [
        Route("/recover", recover, methods=both),
        Route("/reset", reset, methods=both),
        Route("/verify", verify, methods=both),
        Route("/email/confirm", confirm_email_change, methods=both),
        Route("/signin/code", signin_code, methods=both),
        Route("/signin/link", signin_link, methods=both),
    ]
