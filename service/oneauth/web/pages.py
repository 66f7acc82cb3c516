"""The authorization endpoint and the hosted login and consent pages of one app.

    GET|POST /oauth/authorize            validate, then: code, login page or consent page
    POST     /login                      the login form; 303 to /oauth/authorize/continue
    GET      /oauth/authorize/continue   resume a sealed request after login
    POST     /oauth/authorize/organization  the organization picker's form (issue 13)
    POST     /consent                    the consent form; 303 to the client
    GET      /assets/style.css           the app's stylesheet (no inline styles anywhere)

The request travels between these as a sealed ``flow`` value
(:class:`~oneauth.oauth.authorize.AuthorizationRequest`); the browser session
is a server-side row named by an app-scoped cookie (:mod:`.browser_session`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    ApiError,
    EmailNotVerified,
    InvalidCredentials,
    ServiceUnavailable,
    TooManyRequests,
)
from oneauth.flows import engine, federation
from oneauth.flows.federation import Button
from oneauth.http.contract import Operation, lenient, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.oauth import consents, organizations
from oneauth.oauth.authorize import (
    AuthorizationRequest,
    AuthorizeError,
    PageError,
    error_uri,
    issue_code,
    parse_request,
    revalidate,
    single_values,
    success_uri,
)
from oneauth.oauth.clients import Client
from oneauth.oauth.models import AuthorizeQuery
from oneauth.oauth.organizations import MemberOrg
from oneauth.services import Services
from oneauth.strategies import webauthn
from oneauth.web import browser_session, csrf, signin
from oneauth.web.browser_session import BrowserSession
from oneauth.web.common import continue_url, error_page, expired, targets
from oneauth.web.models import ConsentForm, FlowForm, OrgPickForm
from oneauth.web.render import branding, redirect, render, stylesheet

SCOPE_TEXT = {
    "openid": "Know who you are (your account id)",
    "profile": "See your basic profile",
    "email": "See your email address and whether it is verified",
    "offline_access": "Stay connected when you are not using it",
    "organization": "Act in the organization you choose, with your roles there",
}

Step = Literal["login", "pick_org", "step_up", "account", "consent", "code"]


def _to_client(
    services: Services, app: AppRecord, error: AuthorizeError, status: int = 302
) -> Response:
    issuer = services.settings.issuer_for(app.app_id)
    uri = error_uri(error.redirect_uri, error.error, error.description, error.state, issuer)
    return redirect(uri, status)


@operation(
    Operation(
        "Authorization endpoint (RFC 6749 section 3.1): sign-in and consent pages",
        query=AuthorizeQuery,
        form=AuthorizeQuery,
        responses={200: str, 302: None, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def authorize(request: Request) -> Response:
    """RFC 6749 section 3.1; OIDC Core 3.1.2.1 asks for GET and POST."""
    app = current_app(request)
    services = Services.of(request)
    if request.method == "POST":
        try:
            form = await read_form(request)  # a repeated parameter: refused here
        except ApiError as exc:
            return error_page(request, services, app, exc.detail, code="invalid_request")
        params, repeated = form, set[str]()
    else:
        params, repeated = single_values(request.query_params.multi_items())
    query, refused = lenient(params, AuthorizeQuery)
    try:
        # One transaction: validate, then sign-in, consent or a code.
        async with services.router.enter(app) as conn:
            client, authz = await parse_request(services, app, conn, query, refused, repeated)
            step = await next_step(request, services, app, conn, client, authz)
    except PageError as exc:
        return error_page(request, services, app, exc.message, code=exc.code)
    except AuthorizeError as exc:
        return _to_client(services, app, exc)
    return await respond(request, services, app, client, authz, step, status=302)


@dataclass(frozen=True, slots=True)
class NextStep:
    kind: Step
    session: BrowserSession | None = None
    code: str | None = None
    # The request as it goes on: with its org resolved to an id (issue 13).
    authz: AuthorizationRequest | None = None
    orgs: tuple[MemberOrg, ...] = ()  # pick_org: what the picker offers
    providers: tuple[Button, ...] = ()  # the login page's upstream buttons (issue 14)


async def next_step(
    request: Request,
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    client: Client,
    authz: AuthorizationRequest,
) -> NextStep:
    """Sign-in, consent or a code (issued here), whichever the request and browser need."""
    session = await browser_session.current(
        conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
    )
    if await _needs_login(conn, app, session, authz):
        # none, prompt=login / max_age, or short of the MFA policy
        return NextStep("login", providers=tuple(await federation.buttons(conn)))
    assert session is not None
    org_mfa = False
    if authz.wants_org and not authz.account:
        # Issue 13: the org is the signed-in user's to use (or to pick) before
        # anything is issued for it.
        picked = await org_of_request(conn, session, authz, client)
        if isinstance(picked, NextStep):
            return picked
        authz, org = picked
        org_mfa = org.mfa_required and not await engine.session_satisfies(
            conn, app, session.user_id, session.amr, org_requires_mfa=True
        )
    if org_mfa or authz.needs_step_up(session.amr):
        # acr_values, or the org's mfa_required, asks for a second factor the
        # browser's sign-in lacks: a step-up of that sign-in.
        return NextStep("step_up", session, authz=authz)
    if authz.account:
        return NextStep("account", session)  # the account page: no consent, no code
    if not client.first_party and (
        "consent" in authz.prompt
        or not await consents.covers(conn, session.user_id, client.client_id, authz.scope)
    ):
        return NextStep("consent", session, authz=authz)
    code = await issue_code(conn, authz, session)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    await _audit_code(conn, meta, authz, session.sub)
    return NextStep("code", session, code, authz=authz)


async def org_of_request(
    conn: asyncpg.Connection, session: BrowserSession, authz: AuthorizationRequest, client: Client
) -> tuple[AuthorizationRequest, MemberOrg] | NextStep:
    """The org an org-scoped request is for, checked for the signed-in user: the
    request (its org now an id) and the org, or the picker's step. A client
    registered for one org (``clients create --org``) gets tokens of that org only.

    Raises :class:`AuthorizeError` ``access_denied`` for an org the user cannot use:
    unknown, another app's and not-a-member get one answer (nothing about orgs the
    user does not belong to is revealed); a member learns that it is suspended.
    """

    def denied(description: str) -> AuthorizeError:
        return AuthorizeError(
            "access_denied", description, redirect_uri=authz.redirect_uri, state=authz.state
        )

    if authz.org_pick:
        orgs = await organizations.active_orgs_of(conn, session.user_id)
        if client.org_id is not None:
            orgs = [o for o in orgs if o.id == client.org_id]
        if not orgs:
            raise denied("the user is not a member of any active organization of this app")
        # prompt=select_account: the user confirms even a single org.
        if len(orgs) > 1 or "select_account" in authz.prompt:
            return NextStep("pick_org", session, authz=authz, orgs=tuple(orgs))
        return authz.for_org(orgs[0].id), orgs[0]
    org = await organizations.member_org(
        conn, session.user_id, org_id=authz.org_id, slug=authz.org_slug
    )
    if org is None or client.org_id not in (None, org.id):
        raise denied("the user is not a member of the organization the application asked for")
    if not org.active:
        raise denied("the organization is suspended")
    return authz.for_org(org.id), org


async def respond(
    request: Request,
    services: Services,
    app: AppRecord,
    client: Client,
    authz: AuthorizationRequest,
    step: NextStep,
    *,
    status: Literal[302, 303],
) -> Response:
    issuer = services.settings.issuer_for(app.app_id)
    session, code = step.session, step.code
    authz = step.authz or authz
    if step.kind == "login":
        if "none" in authz.prompt:  # OIDC Core 3.1.2.6
            return _to_client(services, app, _prompt_none(authz, "login_required"), status)
        if "create" in authz.prompt:
            from oneauth.web.registration import register_page  # it imports this module

            return register_page(request, services, app, client, authz)
        if authz.idp_hint:
            # Straight to that upstream provider (issue 14); its start page shows this
            # login page instead if the app has no such enabled provider.
            from oneauth.web.federation_pages import start_url  # it imports this module

            return redirect(start_url(services, app, authz.idp_hint, authz), status)
        return login_page(request, services, app, client, authz, providers=step.providers)
    if step.kind == "pick_org":
        if "none" in authz.prompt:  # OIDC Core 3.1.2.6: the user would have to choose
            error = _prompt_none(authz, "account_selection_required")
            return _to_client(services, app, error, status)
        assert session is not None
        return org_picker_page(request, services, app, client, authz, session, step.orgs)
    if step.kind == "step_up":
        # Signed in, but with fewer factors than acr_values (or the org's mfa_required)
        # asks for: the user must act.
        if "none" in authz.prompt:
            return _to_client(services, app, _prompt_none(authz, "interaction_required"), status)
        assert session is not None
        return await step_up_page(request, services, app, authz, session)
    if step.kind == "account":
        return redirect(authz.redirect_uri, status)  # {issuer}/account, set by us
    if step.kind == "consent":
        if "none" in authz.prompt:
            return _to_client(services, app, _prompt_none(authz, "consent_required"), status)
        assert session is not None
        return consent_page(request, services, app, client, authz, session.email)
    assert code is not None
    return redirect(success_uri(authz, code, issuer), status)


def _too_old(session: BrowserSession | None, authz: AuthorizationRequest) -> bool:
    return authz.needs_login(session.auth_time.timestamp() if session else None)


async def _needs_login(
    conn: asyncpg.Connection,
    app: AppRecord,
    session: BrowserSession | None,
    authz: AuthorizationRequest,
) -> bool:
    """No session, too old for the request, or one the MFA policy would not issue now
    (made before the user enrolled a factor or the app began to require one)."""
    if session is None or _too_old(session, authz):
        return True
    return not await engine.session_satisfies(conn, app, session.user_id, session.amr)


def _prompt_none(authz: AuthorizationRequest, error: str) -> AuthorizeError:
    return AuthorizeError(
        error,
        "user interaction is needed but prompt=none was requested",
        redirect_uri=authz.redirect_uri,
        state=authz.state,
    )


async def _audit_code(
    conn: Any, meta: audit.RequestMeta, authz: AuthorizationRequest, sub: str
) -> None:
    await audit.record(
        conn,
        "oauth.authorize",
        "success",
        meta,
        actor_type="user",
        actor_id=sub,
        target_type="client",
        target_id=authz.client_id,
        details={
            "scope": authz.scope_text,
            **({"org_id": authz.org_id} if authz.org_id else {}),
        },
    )


def org_picker_page(
    request: Request,
    services: Services,
    app: AppRecord,
    client: Client,
    authz: AuthorizationRequest,
    session: BrowserSession,
    orgs: tuple[MemberOrg, ...],
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """Issue 13: the client asked for an org (bare ``organization`` scope) and the user
    has several (or ``prompt=select_account``): each of the user's active orgs, branded
    by its own settings inside the app's page (its logo, else its colour as an SVG
    mark: the CSP allows no inline style)."""
    return render(
        request,
        services,
        app,
        "org_picker.html",
        {
            "flow": authz.seal(services.box, app.app_id),
            "client_name": None if client.first_party else client.name,
            "email": session.email,
            "orgs": orgs,
            "error": error,
        },
        status=status,
        # The POST ends, two redirects later, at the client's redirect URI.
        form_targets=targets(authz.redirect_uri),
    )


def login_page(
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
    providers: Sequence[Button] = (),
) -> Response:
    passkeys = webauthn.offered_on_hosted_pages(services.settings, app)  # issue 12
    return render(
        request,
        services,
        app,
        "login.html",
        {
            "flow": authz.seal(services.box, app.app_id),
            "client_name": None if client.first_party else client.name,
            "email": email if email is not None else authz.login_hint,
            "error": error,
            # Sign-in by emailed code exists only where the app turned it on (issue 5).
            "passwordless": bool(getattr(policy_of(app), "passwordless", False)),
            # The "Create account" link (issue 12); invitation-only apps show none.
            "self_signup": policy_of(app).self_signup,
            "passkeys": passkeys,
            # "Continue with ..." of the app's enabled upstream providers (issue 14).
            "providers": providers,
        },
        status=status,
        headers=headers,
        # The POST ends, two redirects later, at the client's redirect URI.
        form_targets=targets(authz.redirect_uri),
        scripts=passkeys,
    )


async def step_up_page(
    request: Request,
    services: Services,
    app: AppRecord,
    authz: AuthorizationRequest,
    session: BrowserSession,
) -> Response:
    """The client asked for a second factor (``acr_values``) the browser's sign-in lacks:
    a step-up of that sign-in. A flow of the engine for the signed-in user starts with the
    session's factor as its first; the policy is asked as if MFA were required, so the
    page is the second-factor form (or the enrolment, for a user with no factor), and
    the request continues when the flow completes, with a new session of both factors."""
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    nonce = engine.new_browser_nonce()
    serves = {"client_id": authz.client_id, "authorize": authz.seal(services.box, app.app_id)}
    async with services.router.enter(app) as conn:
        flow = engine.transient(
            kind="login",  # the kind the hosted second-factor form continues
            binding=engine.browser_binding(nonce),
            serves=serves,
            user_id=session.user_id,
        )
        flow = await engine.satisfy(conn, flow, "session", session.amr, session.user_id)
        outcome = await engine.complete(
            services,
            app,
            conn,
            flow,
            meta=meta,
            method="step_up",
            browser=request,
            org_requires_mfa=True,  # what acr_values asks for, whatever the app's policy
            details={"client_id": authz.client_id},
        )
    if isinstance(outcome, engine.Issued):  # a session with mfa would not have come here
        return signin.signed_in(request, services, app, outcome)
    return await signin.pending(request, services, app, outcome, meta, nonce)


def consent_page(
    request: Request,
    services: Services,
    app: AppRecord,
    client: Client,
    authz: AuthorizationRequest,
    email: str,
) -> Response:
    scopes = [{"name": s, "text": SCOPE_TEXT.get(s, "Use the permission")} for s in authz.scope]
    return render(
        request,
        services,
        app,
        "consent.html",
        {
            "flow": authz.seal(services.box, app.app_id),
            "client_name": client.name,
            "email": email,
            "scopes": scopes,
        },
        # Chromium checks form-action on the 303 that follows the POST as well.
        form_targets=targets(authz.redirect_uri),
    )


async def _posted_flow(
    request: Request, services: Services, app: AppRecord
) -> tuple[dict[str, str], Client, AuthorizationRequest] | Response:
    """The form of a hosted page, its CSRF check, and the request it continues (both
    read through :class:`~oneauth.web.models.FlowForm`)."""
    try:
        form = await read_form(request)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    posted, _ = lenient(form, FlowForm)
    if not csrf.check(request, services.settings, app.app_id, posted.csrf):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Go back to the"
            " application and start again.",
            code="csrf",
            status=403,
        )
    authz = AuthorizationRequest.unseal(services.box, app.app_id, posted.flow)
    if authz is None:
        return expired(request, services, app)
    try:
        async with services.router.enter(app) as conn:
            client = await revalidate(services, app, conn, authz)
    except PageError as exc:
        return error_page(request, services, app, exc.message, code=exc.code)
    except AuthorizeError as exc:
        return _to_client(services, app, exc, 303)
    return form, client, authz


@operation(
    Operation(
        "The sign-in form of the authorization flow",
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def login(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    posted = await _posted_flow(request, services, app)
    if isinstance(posted, Response):
        return posted
    form, client, authz = posted
    email = form.get("email", "").strip()[:320]
    secret = form.get("password", "")

    async def again(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
        async with services.router.enter(app) as conn:
            buttons = tuple(await federation.buttons(conn))
        return login_page(
            request,
            services,
            app,
            client,
            authz,
            error=message,
            email=email,
            status=status,
            headers=headers,
            providers=buttons,
        )

    if not email or not secret:
        return await again("Enter your email address and your password.", 400)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        # The password strategy through the flow engine (issue 12): a browser
        # session, or the second-factor / enrolment page when the policy asks.
        started = await signin.first_factor(
            request,
            services,
            app,
            "password",
            {"email": email, "password": secret},
            meta,
            authz=authz,
            method="password",
        )
    except InvalidCredentials:
        # One message for unknown accounts and wrong passwords (P4).
        return await again("The email address or password is not right.", 400)
    except TooManyRequests as exc:
        return await again(
            "Too many attempts. Wait a few minutes, then try again.", 429, exc.headers
        )
    except EmailNotVerified:
        return await again("Confirm your email address first, then sign in.", 403)
    except ServiceUnavailable as exc:
        return await again("We are very busy right now. Try again in a moment.", 503, exc.headers)
    if isinstance(started.outcome, engine.Pending):
        return await signin.pending(request, services, app, started.outcome, meta, started.nonce)
    return signin.signed_in(request, services, app, started.outcome)


@operation(
    Operation(
        "Continue a sealed authorization request after sign-in",
        responses={200: str, 302: None, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def resume(request: Request) -> Response:
    """After login (and for other sign-in pages): continue a sealed request."""
    app = current_app(request)
    services = Services.of(request)
    authz = AuthorizationRequest.unseal(services.box, app.app_id, request.query_params.get("flow"))
    if authz is None:
        return expired(request, services, app)
    try:
        async with services.router.enter(app) as conn:
            client = await revalidate(services, app, conn, authz)
            step = await next_step(request, services, app, conn, client, authz)
    except PageError as exc:
        return error_page(request, services, app, exc.message, code=exc.code)
    except AuthorizeError as exc:
        return _to_client(services, app, exc)
    return await respond(request, services, app, client, authz, step, status=302)


async def _org_still_fits(
    conn: asyncpg.Connection,
    app: AppRecord,
    session: BrowserSession,
    authz: AuthorizationRequest,
    client: Client,
) -> bool:
    """The request's org is still the user's, active, and satisfied by the session's
    factors; False sends the browser through the request again (picker, step-up)."""
    picked = await org_of_request(conn, session, authz, client)
    if isinstance(picked, NextStep):
        return False
    _, org = picked
    return not org.mfa_required or await engine.session_satisfies(
        conn, app, session.user_id, session.amr, org_requires_mfa=True
    )


async def _consented(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    client: Client,
    authz: AuthorizationRequest,
    session: BrowserSession,
    *,
    allow: bool,
) -> str | None:
    """Record the user's answer; the code if they allowed."""
    await audit.record(
        conn,
        "consent.grant" if allow else "consent.deny",
        "success",
        meta,
        actor_type="user",
        actor_id=session.sub,
        target_type="client",
        target_id=client.client_id,
        details={"scope": authz.scope_text},
    )
    if not allow:
        return None
    await consents.grant(conn, session.user_id, client.client_id, authz.scope)
    code = await issue_code(conn, authz, session)
    await _audit_code(conn, meta, authz, session.sub)
    return code


@operation(
    Operation(
        "The organization picker of the authorization flow (issue 13)",
        form=OrgPickForm,
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def pick_organization(request: Request) -> Response:
    """The user picked one of their orgs: the request goes on for it (through
    ``/oauth/authorize/continue``, which checks it again with the org's MFA rule)."""
    app = current_app(request)
    services = Services.of(request)
    posted = await _posted_flow(request, services, app)
    if isinstance(posted, Response):
        return posted
    form, client, authz = posted
    issuer = services.settings.issuer_for(app.app_id)
    chosen = lenient(form, OrgPickForm)[0].organization_id
    if not authz.org_pick:  # nothing to pick (a request sealed for one org): go on
        return redirect(continue_url(issuer, authz.seal(services.box, app.app_id)), 303)
    async with services.router.enter(app) as conn:
        session = await browser_session.current(
            conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
        )
        org = None
        # An org client's requests are for its own org only.
        usable = chosen is not None and client.org_id in (None, chosen)
        if session is not None and usable and organizations.ORG_ID.fullmatch(chosen or ""):
            org = await organizations.member_org(conn, session.user_id, org_id=chosen)
        offered: tuple[MemberOrg, ...] = ()
        if session is not None and (org is None or not org.active):
            offered = tuple(
                o
                for o in await organizations.active_orgs_of(conn, session.user_id)
                if client.org_id in (None, o.id)
            )
    if session is None:
        # Signed out in another tab meanwhile: sign in again, then pick again.
        return redirect(continue_url(issuer, authz.seal(services.box, app.app_id)), 303)
    if org is None or not org.active:
        # Not one of the user's active orgs (left, suspended, or a forged value).
        return org_picker_page(
            request,
            services,
            app,
            client,
            authz,
            session,
            offered,
            error="Choose one of your organizations below.",
            status=400,
        )
    chosen_authz = authz.for_org(org.id)
    return redirect(continue_url(issuer, chosen_authz.seal(services.box, app.app_id)), 303)


@operation(
    Operation(
        "The consent form of the authorization flow",
        form=ConsentForm,
        responses={200: str, 302: None, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def consent(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    posted = await _posted_flow(request, services, app)
    if isinstance(posted, Response):
        return posted
    form, client, authz = posted
    issuer = services.settings.issuer_for(app.app_id)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    allow = lenient(form, ConsentForm)[0].decision == "allow"
    code = None
    try:
        async with services.router.enter(app) as conn:
            session = await browser_session.current(
                conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
            )
            stale = await _needs_login(conn, app, session, authz)
            if not stale and authz.wants_org:
                # The user may have left the org, or the org been suspended or begun
                # to require MFA, while the consent page was open: checked again.
                assert session is not None
                stale = not await _org_still_fits(conn, app, session, authz, client)
            if not stale:
                assert session is not None
                code = await _consented(conn, meta, client, authz, session, allow=allow)
    except AuthorizeError as exc:
        return _to_client(services, app, exc, 303)
    if stale:
        # Signed out in another tab meanwhile: sign in again, then consent again.
        return redirect(continue_url(issuer, authz.seal(services.box, app.app_id)), 303)
    if code is None:
        denied = AuthorizeError(
            "access_denied",
            "the user did not allow access",
            redirect_uri=authz.redirect_uri,
            state=authz.state,
        )
        return _to_client(services, app, denied, 303)
    return redirect(success_uri(authz, code, issuer), 303)


@operation(
    Operation(
        "The hosted pages' stylesheet", responses={200: str}, media_type="text/css", tags=("pages",)
    )
)
async def style(request: Request) -> Response:
    brand = branding(current_app(request))
    return Response(
        stylesheet(brand.color, brand.text_color),
        media_type="text/css",
        headers={"cache-control": "public, max-age=300"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/oauth/authorize", authorize, methods=["GET", "POST"]),
        Route("/oauth/authorize/continue", resume, methods=["GET"]),
        Route("/oauth/authorize/organization", pick_organization, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/consent", consent, methods=["POST"]),
        Route("/assets/style.css", style, methods=["GET"]),
    ]
