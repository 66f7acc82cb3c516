"""Passkeys on the hosted pages (issue 12): the login page's "Sign in with a passkey".

    GET  /assets/passkeys.js   the script (CSP script-src 'self'; no inline script)
    POST /passkey/options      CSRF form -> JSON request options, challenge bound to a
                               browser flow (begun here, or the page's ``flow_token``)
    POST /passkey/signin       CSRF form: the sealed authorization request, the flow
                               token and the assertion -> the browser session, 303 on
    POST /account/passkeys/options   the account page: creation options for the
    POST /account/passkeys           signed-in browser session (CSRF header
                                     ``x-csrf-token``, a sign-in of the last
                                     ``mfa_change_max_age`` seconds), then store

A browser flow is bound to a nonce kept in an app-scoped HttpOnly cookie (the
hosted sign-in pages' ``oneauth_mfa_<app>``, :mod:`oneauth.web.signin`): a flow
token copied out of the page is of no use in another browser. The strategy
(:mod:`oneauth.strategies.webauthn`) does every check, the engine completes the
flow, :mod:`oneauth.web.signin` shows what follows; this module is the skin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oneauth import untrusted
from oneauth.api.models import (
    WebAuthnCreationOptions,
    WebAuthnRegistered,
    WebAuthnRegistration,
    WebAuthnRequestOptions,
)
from oneauth.api.webauthn import NO_STORE, registered
from oneauth.apps.models import AppRecord
from oneauth.errors import (
    ApiError,
    FeatureDisabled,
    FlowExpired,
    Forbidden,
    ValidationFailed,
)
from oneauth.flows import engine, login, passkeys
from oneauth.http.contract import Operation, convert, json_body, json_response, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.identity import throttle
from oneauth.identity import webauthn as webauthn_repo
from oneauth.oauth.authorize import AuthorizationRequest, AuthorizeError, PageError, revalidate
from oneauth.services import Services
from oneauth.strategies import webauthn
from oneauth.web import browser_session, csrf, pages, signin
from oneauth.web.common import error_page, expired
from oneauth.web.render import render

HERE = Path(__file__).resolve().parent
LOGIN: tuple[engine.Kind, ...] = ("login",)
MAX_ASSERTION = 16_384  # characters of a toJSON() assertion (ids <= 1023 bytes)


class PasskeyOptionsForm(msgspec.Struct):
    csrf: str | None = None
    flow: str | None = None
    flow_token: str | None = None


class PasskeySigninForm(msgspec.Struct):
    csrf: str | None = None
    flow: str | None = None  # the login page's sealed request (to show it again)
    flow_token: str | None = None
    factors: str | None = None  # the second-factor page's list (to show it again)
    assertion: str | None = None


@cache
def _script() -> bytes:
    return (HERE / "static" / "passkeys.js").read_bytes()


@operation(
    Operation(
        "The hosted pages' passkey script",
        responses={200: str},
        media_type="text/javascript",
        tags=("pages",),
    )
)
async def script(request: Request) -> Response:
    current_app(request)  # unknown apps: 404 like every app route
    return Response(
        _script(),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"},
    )


def _problem(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        exc.to_problem(),
        status_code=exc.status,
        media_type="application/problem+json",
        headers={"cache-control": "no-store"},
    )


@operation(
    Operation(
        "Hosted pages: request options for a passkey sign-in (CSRF form)",
        form=PasskeyOptionsForm,
        responses={200: WebAuthnRequestOptions},
        errors=(400, 403, 429),
        tags=("pages",),
    )
)
async def options(request: Request) -> Response:
    """Options bound to a browser flow: the second-factor page's (``flow_token``,
    its nonce cookie), or, from the login page (``flow``: the sealed authorization
    request), a new flow begun here for a passwordless sign-in."""
    app = current_app(request)
    services = Services.of(request)
    settings = services.settings
    try:
        form = convert(await read_form(request), PasskeyOptionsForm)
        if not csrf.check(request, settings, app.app_id, form.csrf):
            return _problem(FlowExpired("this page has expired; reload it"))
        if not webauthn.offered_on_hosted_pages(settings, app):
            raise FeatureDisabled("passkeys are not enabled for this app's pages")
        flow_token = form.flow_token or None
        fresh = None
        async with services.router.enter(app) as conn:
            if flow_token is not None:
                binding = signin._binding(request, app)
                if binding is None:
                    raise FlowExpired()
                flow = await engine.load(conn, flow_token, binding=binding, kinds=LOGIN)
            else:
                authz = AuthorizationRequest.unseal(services.box, app.app_id, form.flow)
                if authz is None:
                    raise FlowExpired()
                fresh = engine.new_browser_nonce()
                meta = request_meta(request, app.app_id, services.ip_hash_key)
                names = throttle.Names(settings.master_key, app.app_id)
                await webauthn_repo.before_anonymous_flow(conn, names, meta.ip_hash)
                flow, flow_token = await engine.begin(
                    conn,
                    app,
                    kind="login",
                    binding=engine.browser_binding(fresh),
                    # What signin.signed_in continues once the flow completes.
                    serves={
                        "client_id": authz.client_id,
                        "authorize": authz.seal(services.box, app.app_id),
                    },
                )
            public_key = await webauthn.begin_authentication(
                conn, settings, app, flow_id=flow.id, user_id=flow.user_id
            )
    except ApiError as exc:
        return _problem(exc)
    body: dict[str, Any] = {"publicKey": public_key}
    if fresh is not None:
        body["flow_token"] = flow_token
    response = JSONResponse(body, headers={"cache-control": "no-store"})
    if fresh is not None:
        browser_session.set_cookie(
            response, settings, app.app_id, signin.NONCE_COOKIE + app.app_id, fresh, engine.FLOW_TTL
        )
    return response


@operation(
    Operation(
        "Hosted pages: finish a passkey sign-in (login page or second-factor page)",
        form=PasskeySigninForm,
        responses={200: str, 303: None},
        errors=(400, 401, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def finish(request: Request) -> Response:
    """The assertion for the browser's flow, through the engine like every factor
    (``login.continue_flow``); then the hosted pages' next step (``signin``)."""
    app = current_app(request)
    services = Services.of(request)
    form = await signin._posted(request, services, app)  # the CSRF check
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    binding = signin._binding(request, app)
    flow_token = form.get("flow_token", "")[:100]
    if binding is None or not flow_token:
        return expired(request, services, app)
    try:
        text = form.get("assertion", "")
        if not text or len(text) > MAX_ASSERTION:
            raise webauthn.PasskeyRefused()
        try:
            assertion = untrusted.loads(text)
        except untrusted.UntrustedInput:
            raise webauthn.PasskeyRefused() from None
        outcome = await login.continue_flow(
            services,
            app,
            flow_token,
            webauthn.NAME,
            {"assertion": assertion},
            meta,
            binding=binding,
            browser=request,
        )
    except FlowExpired:
        return expired(request, services, app)
    except ApiError as exc:
        message = (
            "That passkey was not accepted here. Use a passkey you registered with this app,"
            " or sign in another way."
            if isinstance(exc, webauthn.PasskeyRefused)
            else exc.detail
        )
        return await _again(request, services, app, form, message, exc.status)
    if isinstance(outcome, engine.Pending):
        return await signin.pending(request, services, app, outcome, meta, None)
    return signin.signed_in(request, services, app, outcome)


async def _again(
    request: Request,
    services: Services,
    app: AppRecord,
    form: dict[str, str],
    message: str,
    status: int,
) -> Response:
    """The page the passkey button was on, with the message: the login page (its form
    carried the sealed request) or the second-factor page."""
    authz = AuthorizationRequest.unseal(services.box, app.app_id, form.get("flow"))
    if authz is None:
        factors = [f for f in form.get("factors", webauthn.NAME).split(",") if f][:5]
        return signin.factor_page(
            request,
            services,
            app,
            flow_token=form.get("flow_token", "")[:100],
            factors=factors,
            error=message,
            status=status,
        )
    try:
        async with services.router.enter(app) as conn:
            client = await revalidate(services, app, conn, authz)
    except (PageError, AuthorizeError):
        return expired(request, services, app)
    return pages.login_page(request, services, app, client, authz, error=message, status=status)


# -- the enrolment page: a passkey as the first second factor --------------------


class PasskeyEnrolForm(msgspec.Struct):
    csrf: str | None = None
    flow_token: str | None = None
    credential: str | None = None  # the new credential's toJSON(), as JSON text


def _enrolment(request: Request, services: Services, app: AppRecord, flow_token: str) -> Any:
    """The enrolment flow of this browser (signin's nonce cookie) as the actor."""
    binding = signin._binding(request, app)
    if binding is None or not flow_token:
        raise FlowExpired()
    return passkeys.by_token(
        services, app, bearer=None, flow_token=flow_token[:100], binding=binding
    )


@operation(
    Operation(
        "Hosted enrolment page: options to register a passkey for the enrolment flow",
        form=PasskeyEnrolForm,
        responses={200: WebAuthnCreationOptions},
        errors=(400, 403),
        tags=("pages",),
    )
)
async def enrol_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    try:
        form = await read_form(request)
        if not csrf.check(request, services.settings, app.app_id, form.get(csrf.FIELD)):
            raise FlowExpired("this page has expired; reload it")
        if not webauthn.offered_on_hosted_pages(services.settings, app):
            raise FeatureDisabled("passkeys are not enabled for this app's pages")
        authorize = _enrolment(request, services, app, form.get("flow_token", ""))
        public_key = await passkeys.registration_options(services, app, authorize)
    except ApiError as exc:
        return _problem(exc)
    return json_response(WebAuthnCreationOptions(publicKey=public_key), headers=NO_STORE)


@operation(
    Operation(
        "Hosted enrolment page: register the passkey; the sign-in completes",
        form=PasskeyEnrolForm,
        responses={200: str},
        errors=(400, 403, 409, 422),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def enrol(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    form = await signin._posted(request, services, app)  # the CSRF check
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        text = form.get("credential", "")
        try:
            credential = untrusted.loads(text) if 0 < len(text) <= MAX_ASSERTION else None
        except untrusted.UntrustedInput:
            credential = None
        if not isinstance(credential, dict):
            raise ValidationFailed("no passkey came back from the browser")
        authorize = _enrolment(request, services, app, form.get("flow_token", ""))
        done = await passkeys.register(
            services, app, meta, authorize, credential=credential, name=None, browser=request
        )
    except FlowExpired:
        return expired(request, services, app)
    except ApiError as exc:
        return error_page(
            request,
            services,
            app,
            f"The passkey could not be set up ({exc.detail}). Go back and try again,"
            " or use an authenticator app.",
            title="Passkey not set up",
            code=exc.code,
            status=exc.status,
        )
    if done.issued is None:
        return expired(request, services, app)
    response = render(
        request,
        services,
        app,
        "codes.html",
        {
            "codes": done.recovery_codes or [],
            "next_url": signin._next_url(services, app, done.issued),
        },
    )
    signin._set_session(response, services, app, done.issued)
    return response


# -- the account page: registration for the browser session ---------------------


def _account_csrf(request: Request, services: Services, app: AppRecord) -> None:
    """The account page's calls carry its CSRF token in ``x-csrf-token`` (JSON bodies)."""
    if not csrf.check(request, services.settings, app.app_id, request.headers.get("x-csrf-token")):
        raise Forbidden("this page has expired or did not come from this site; reload it")


@operation(
    Operation(
        "Account page: options to register a passkey for the signed-in browser",
        responses={200: WebAuthnCreationOptions},
        errors=(401, 403),
        tags=("pages",),
    )
)
async def account_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    try:
        _account_csrf(request, services, app)
        public_key = await passkeys.registration_options(
            services, app, passkeys.by_browser_session(app, request)
        )
    except ApiError as exc:
        return _problem(exc)
    return json_response(WebAuthnCreationOptions(publicKey=public_key), headers=NO_STORE)


@operation(
    Operation(
        "Account page: register the passkey the browser made",
        body=WebAuthnRegistration,
        responses={201: WebAuthnRegistered},
        errors=(401, 403, 409, 413, 415, 422),
        tags=("pages",),
    )
)
async def account_register(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        _account_csrf(request, services, app)
        data = await json_body(request, WebAuthnRegistration)
        done = await passkeys.register(
            services,
            app,
            meta,
            passkeys.by_browser_session(app, request),
            credential=data.credential,
            name=data.name,
        )
    except ApiError as exc:
        return _problem(exc)
    return json_response(registered(done), status_code=201, headers=NO_STORE)


def routes() -> list[BaseRoute]:
    return [
        Route("/assets/passkeys.js", script, methods=["GET"]),
        Route("/passkey/options", options, methods=["POST"]),
        Route("/passkey/signin", finish, methods=["POST"]),
        Route("/passkey/enrol/options", enrol_options, methods=["POST"]),
        Route("/passkey/enrol", enrol, methods=["POST"]),
        Route("/account/passkeys/options", account_options, methods=["POST"]),
        Route("/account/passkeys", account_register, methods=["POST"]),
    ]
