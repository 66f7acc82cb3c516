"""The hosted registration page: sign-up inside an authorization request (issue 12).

    GET  /register?flow=...   the form (from the login page's "Create account" link,
                              or the authorization endpoint for ``prompt=create``)
    POST /register            create the account, then continue the request

"Initiating User Registration via OpenID Connect 1.0" (``prompt=create``): after
the account is created the authorization request goes on as after a sign-in, so the
client gets its code. The account is made by the same service as ``POST /v1/signup``
(:func:`oneauth.flows.password.register`), with the same answers: where the app
requires a verified email, every address, taken or not, gets the same "check your
email" page (P4); otherwise a taken address is told so, as ``/v1/signup`` says 409
(the documented price of instant sign-up). ``self_signup: false`` refuses with 403
``signup_disabled`` here as there.
"""

from __future__ import annotations

import uuid

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    EmailTaken,
    ServiceUnavailable,
    SignupDisabled,
    TooManyRequests,
    ValidationFailed,
    WeakPasswordError,
)
from oneauth.flows import engine, password, verification
from oneauth.http.contract import Operation, convert, lenient, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import request_meta
from oneauth.identity.users import User
from oneauth.oauth.authorize import AuthorizationRequest, AuthorizeError, PageError, revalidate
from oneauth.oauth.clients import Client
from oneauth.services import Services
from oneauth.web import browser_session, invitations, signin
from oneauth.web.common import continue_url, error_page, expired, targets
from oneauth.web.models import FlowQuery, RegisterForm
from oneauth.web.pages import _posted_flow, _to_client
from oneauth.web.recovery_pages import FLOW_COOKIE
from oneauth.web.render import render

__all__ = ["register_page", "routes"]


def register_page(
    request: Request,
    services: Services,
    app: AppRecord,
    client: Client,
    authz: AuthorizationRequest,
    *,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    invited: bool = False,
) -> Response:
    """The registration form continuing ``authz`` (403 when the app has no self sign-up,
    unless ``invited``: the request returns to an open invitation, issue 13)."""
    issuer = services.settings.issuer_for(app.app_id)
    disabled = not policy_of(app).self_signup and not invited
    sign_in = authz.sign_in_instead().seal(services.box, app.app_id)
    return render(
        request,
        services,
        app,
        "register.html",
        {
            "flow": authz.seal(services.box, app.app_id),
            "client_name": None if client.first_party else client.name,
            "email": email if email is not None else authz.login_hint,
            "error": error,
            "disabled": disabled,
            "code": SignupDisabled.code if disabled else None,
            "sign_in_url": continue_url(issuer, sign_in),
        },
        status=403 if disabled else status,
        headers=headers,
        form_targets=targets(authz.redirect_uri),
    )


@operation(
    Operation(
        "Hosted page: the registration form of the authorization flow (prompt=create)",
        query=FlowQuery,
        responses={200: str},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def show(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    sealed = lenient(request.query_params, FlowQuery)[0].flow  # as declared (issue 11)
    authz = AuthorizationRequest.unseal(services.box, app.app_id, sealed)
    if authz is None:
        return expired(request, services, app)
    try:
        async with services.router.enter(app) as conn:
            client = await revalidate(services, app, conn, authz)
            invitation = await invitations.invitation_for(services, app, conn, authz)
    except PageError as exc:
        return error_page(request, services, app, exc.message, code=exc.code)
    except AuthorizeError as exc:
        return _to_client(services, app, exc)
    return register_page(request, services, app, client, authz, invited=invitation is not None)


@operation(
    Operation(
        "Hosted page: create an account, then continue the authorization request",
        form=RegisterForm,
        responses={200: str, 303: None},
        errors=(400, 403, 409, 422, 429, 503),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def submit(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    posted = await _posted_flow(request, services, app)
    if isinstance(posted, Response):
        return posted
    raw_form, client, authz = posted
    async with services.router.enter(app) as conn:
        invitation = await invitations.invitation_for(services, app, conn, authz)
    invited = invitation is not None
    try:
        form = convert(raw_form, RegisterForm)
    except ValidationFailed as exc:
        return register_page(
            request, services, app, client, authz, error=exc.detail, status=422, invited=invited
        )
    email = (form.email or "").strip()
    secret = form.password or ""

    def again(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return register_page(
            request,
            services,
            app,
            client,
            authz,
            error=message,
            email=email,
            status=status,
            headers=headers,
            invited=invited,
        )

    if not policy_of(app).self_signup and not invited:
        return register_page(request, services, app, client, authz)
    if not email or not secret:
        return again("Enter your email address and choose a password.", 400)
    policy = policy_of(app)
    meta = request_meta(request, app.app_id, services.ip_hash_key)

    nonce = engine.new_browser_nonce()

    async def sign_in(
        conn: asyncpg.Connection, user: User
    ) -> tuple[engine.Issued | engine.Pending, uuid.UUID | None]:
        # Sign-up is a flow: the new password is its first factor, and the policy
        # decides as for any sign-in (the hosted login's flow, web/signin.py): a browser
        # session, or, where a second factor is required, the enrolment page first.
        flow = engine.transient(
            kind="signup",
            binding=engine.browser_binding(nonce),
            serves={
                "client_id": client.client_id,
                "authorize": authz.seal(services.box, app.app_id),
            },
        )
        flow = await engine.satisfy(conn, flow, "password", ["pwd"], user.id)
        outcome = await engine.complete(
            services,
            app,
            conn,
            flow,
            meta=meta,
            method="signup",
            browser=request,  # a new cookie, whatever the browser held is retired
            details={"client_id": client.client_id},
        )
        return outcome, None  # no token session yet: the code exchange makes it

    try:
        user, flow_token, outcome = await password.register(
            services, app, email, secret, meta, sign_in, invitation=invitation
        )
    except SignupDisabled:
        if invited:  # an invitation-only app, and another address than the invited one
            return again(
                "This invitation is for another email address: create the account with the"
                " address it was sent to.",
                SignupDisabled.status,
            )
        return register_page(request, services, app, client, authz)
    except (ValidationFailed, WeakPasswordError) as exc:
        return again(exc.detail, 422)
    except TooManyRequests as exc:
        return again("Too many attempts. Wait a few minutes, then try again.", 429, exc.headers)
    except ServiceUnavailable as exc:
        return again("We are very busy right now. Try again in a moment.", 503, exc.headers)
    issuer = services.settings.issuer_for(app.app_id)
    if policy.require_verified_email:
        # The same page for a new and a taken address (P4): the owner of a taken one
        # got a notice by mail instead of a verification link.
        response: Response = render(
            request,
            services,
            app,
            "recovery/done.html",
            {
                "title": "Check your email",
                "message": f"If {email} can be used for a new account, we sent a link to"
                " confirm it. Confirm your address, then sign in.",
                "next_url": continue_url(
                    issuer, authz.sign_in_instead().seal(services.box, app.app_id)
                ),
                "next_label": "Continue to sign in",
            },
        )
    elif user is None or outcome is None:
        # As /v1/signup's 409 where no verification is required (README: the price of
        # instant sign-up).
        return again(
            "An account with this email already exists. Sign in, or reset its password.",
            EmailTaken.status,
        )
    elif isinstance(outcome, engine.Pending):
        response = await signin.pending(request, services, app, outcome, meta, nonce)
    else:
        response = signin.signed_in(request, services, app, outcome)
    # This browser made the signup: the verification link opened in it comes with the
    # signup's flow token (the verify page reads this cookie) and so keeps the password
    # the signup set (P7), as /v1/signup's client keeps it by sending the flow token.
    # A taken address gets the same cookie: its flow token matches nothing.
    browser_session.set_cookie(
        response,
        services.settings,
        app.app_id,
        FLOW_COOKIE + app.app_id,
        flow_token,
        verification.LINK_TTL,  # as long as the link works
    )
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/register", show, methods=["GET"]),
        Route("/register", submit, methods=["POST"]),
    ]
