"""The hosted pages of federation (issue 14): sign-in through an upstream provider.

    GET  /federation/{provider_id}/start      to the upstream's authorization endpoint
    GET  /federation/{provider_id}/callback   the upstream's answer; the flow goes on
    POST /federation/{provider_id}/callback   the same as a form post (Apple's form_post)
    GET  /assets/federation-repost.js         the re-post page's script (CSP 'self')
    POST /federation/link                     prove the existing account, then link
    POST /federation/link/passkey/options     a passkey challenge for that proof
    POST /account/identities/link             link another provider (recent sign-in)
    POST /account/identities/{id}/unlink      unlink one (not the last way to sign in)

A start comes from the hosted login page (its buttons, or ``idp_hint`` on the
authorization request: ``flow`` is the sealed request), from a first-party app
without the OIDC flow (``redirect_uri``: one of the app's ``link_urls``, as for
mailed links; the sign-in ends there with a one-time ``code`` for
``POST /v1/federation/complete``), or from the account page (link another
provider to the signed-in account). Each starts a flow of the engine bound to
this browser by a nonce in an HttpOnly app-path cookie (``oneauth_fed_<app>``):
a callback in another browser (a login CSRF, a stolen state) finds no flow.

The callback hands the upstream's answer to the upstream strategy (fed-core:
state, ``iss``, code exchange, ID token, linking rules) and then:

* a user (linked identity, or a new account where the provider allows it): the
  flow completes through the engine (second factor if the policy wants it, then
  consent and the code to the client, as after any sign-in);
* an existing local account with the same verified address: the link page
  (:func:`link`), which asks for the account's password and a confirmation,
  never a silent link; an account without a password signs in as usual and
  links from its account page;
* anything else (an upstream error, a replayed or foreign state, a bad token):
  an error page that says what happened; nothing is created.

``response_mode=form_post`` (Apple; F9): the upstream's answer is a cross-site
POST, so the SameSite=Lax binding cookie does not come with it. Such a POST is
answered with a small page of ours that posts the same callback parameters (only
those, escaped) back to the callback, now same-site, so the cookie comes with
it; its script is a static file (CSP ``script-src 'self'``), and without script
the page is one "Continue" button. The page touches no state and no row: the
re-posted request goes through exactly the checks of a GET callback (the state
is single use and bound to this browser's flow by the cookie), so a page that
re-posts an attacker's answer in a victim's browser finds the victim's cookie
and an attacker's state, and is refused. A re-posted request that still has no
cookie (``reposted=1``) is refused, never re-posted again.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oneauth import audit, untrusted
from oneauth.api.models import WebAuthnRequestOptions
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import (
    ApiError,
    EmailNotVerified,
    FeatureDisabled,
    FlowExpired,
    InvalidCredentials,
    InvalidLinkOrCode,
    ServiceUnavailable,
    TooManyRequests,
)
from oneauth.flows import engine, federation
from oneauth.http.contract import Operation, convert, lenient, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.oauth.authorize import AuthorizationRequest, PageError, revalidate
from oneauth.services import Services
from oneauth.strategies import webauthn
from oneauth.web import account as account_page
from oneauth.web import browser_session, csrf, pages, signin
from oneauth.web.common import error_page, expired
from oneauth.web.models import (
    AccountForm,
    FederationCallbackForm,
    FederationCallbackQuery,
    FederationLinkForm,
    FederationStartQuery,
)
from oneauth.web.passkey_pages import PasskeyOptionsForm
from oneauth.web.render import redirect, render

NONCE_COOKIE = "oneauth_fed_"  # + app_id

assert not NONCE_COOKIE.startswith(
    (csrf.COOKIE_PREFIX, browser_session.COOKIE_PREFIX, signin.NONCE_COOKIE)
)

_PAGE = Operation(
    "",
    responses={200: str, 302: None, 303: None},
    errors=(400, 403, 404, 429, 503),
    error_format="html",
    media_type="text/html",
    tags=("pages", "federation"),
)

_UNAVAILABLE = "This sign-in option is not available here. Go back and choose another way."
_PASSKEY_REFUSED = (
    "That passkey was not accepted here. Use a passkey of this account, or prove the"
    " account another way."
)


def start_url(
    services: Services, app: AppRecord, provider_id: str, authz: AuthorizationRequest
) -> str:
    """The start of ``provider_id``'s sign-in for the authorization request ``authz``."""
    issuer = services.settings.issuer_for(app.app_id)
    sealed = authz.seal(services.box, app.app_id)
    return f"{issuer}/federation/{provider_id}/start?{urlencode({'flow': sealed})}"


def _nonce(request: Request, app: AppRecord) -> str | None:
    value = request.cookies.get(NONCE_COOKIE + app.app_id)
    return value if value and 20 <= len(value) <= 100 else None


def _refused(
    request: Request,
    services: Services,
    app: AppRecord,
    message: str,
    *,
    code: str,
    status: int = 400,
) -> Response:
    """An error page of a refused federation step; the nonce cookie goes (a retry starts
    over), nothing was created."""
    response = error_page(
        request,
        services,
        app,
        message + " Nothing was created or changed.",
        title="Sign-in with another account failed",
        code=code,
        status=status,
    )
    browser_session.clear_cookie(response, services.settings, app.app_id, NONCE_COOKIE + app.app_id)
    return response


def _with_nonce(response: Response, services: Services, app: AppRecord, nonce: str) -> Response:
    browser_session.set_cookie(
        response, services.settings, app.app_id, NONCE_COOKIE + app.app_id, nonce, engine.FLOW_TTL
    )
    return response


# --- start ----------------------------------------------------------------------


@operation(
    replace(
        _PAGE,
        summary="Hosted page: start a sign-in through one of the app's upstream identity"
        " providers (redirects to it)",
        query=FederationStartQuery,
    )
)
async def start(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    provider_id = request.path_params["provider_id"][:64]
    query, _ = lenient(dict(request.query_params), FederationStartQuery)
    serves: dict[str, Any]
    authz: AuthorizationRequest | None = None
    if query.flow is not None:
        authz = AuthorizationRequest.unseal(services.box, app.app_id, query.flow)
        if authz is None:
            return expired(request, services, app)
        serves = {"client_id": authz.client_id, "authorize": authz.seal(services.box, app.app_id)}
    elif query.redirect_uri is not None:
        # P6: exact member of the operator's link_urls, never a client's redirect URI.
        if query.redirect_uri not in policy_of(app).link_urls:
            return _refused(
                request,
                services,
                app,
                "The address to return to is not one this app allows.",
                code="invalid_redirect_uri",
            )
        serves = {"first_party": query.redirect_uri}
    else:
        return _refused(
            request,
            services,
            app,
            "This link does not say where the sign-in should continue.",
            code="invalid_request",
        )
    return await _begin(request, services, app, provider_id, serves, authz=authz)


async def _begin(
    request: Request,
    services: Services,
    app: AppRecord,
    provider_id: str,
    serves: dict[str, Any],
    *,
    authz: AuthorizationRequest | None = None,
    user_id: uuid.UUID | None = None,
) -> Response:
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    nonce = engine.new_browser_nonce()
    try:
        url = await federation.begin(
            services,
            app,
            provider_id,
            binding=engine.browser_binding(nonce),
            serves=serves,
            user_id=user_id,
            meta=meta,
        )
    except federation.Refused as exc:
        if exc.code == "unknown_provider" and authz is not None:
            # From the login page or idp_hint: the page again, with the reason.
            return await _login_again(request, services, app, authz, _UNAVAILABLE)
        message = _UNAVAILABLE if exc.code == "unknown_provider" else exc.message
        return _refused(request, services, app, message, code=exc.code, status=exc.status)
    response = redirect(url, 302 if request.method == "GET" else 303)
    return _with_nonce(response, services, app, nonce)


async def _login_again(
    request: Request,
    services: Services,
    app: AppRecord,
    authz: AuthorizationRequest,
    message: str,
) -> Response:
    try:
        async with services.router.enter(app) as conn:
            client = await revalidate(services, app, conn, authz)
            buttons = await federation.buttons(conn)
    except PageError as exc:
        return error_page(request, services, app, exc.message, code=exc.code)
    return pages.login_page(
        request,
        services,
        app,
        client,
        replace(authz, idp_hint=None),
        error=message,
        status=400,
        providers=buttons,
    )


# --- callback ---------------------------------------------------------------------


@operation(
    replace(
        _PAGE,
        summary="Hosted page: the upstream identity provider's answer (then second factor,"
        " consent and the code to the client, or the link page); POST: the same answer"
        " as a form post (response_mode=form_post, Apple)",
        query=FederationCallbackQuery,
        form=FederationCallbackForm,
    )
)
async def callback(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    provider_id = request.path_params["provider_id"][:64]
    nonce = _nonce(request, app)
    params: dict[str, str]
    if request.method == "POST":
        malformed = False
        try:
            raw = await read_form(request)
        except ApiError:  # not a form, a repeated name, bad text: refused below
            raw, malformed = {}, True
        form, refused = lenient(raw, FederationCallbackForm)
        params = {k: v for k, v in msgspec.structs.asdict(form).items() if v is not None}
        reposted = params.pop("reposted", None) is not None
        if refused or malformed:
            params["state"] = ""
        elif nonce is None and not reposted:
            # A cross-site form_post: no SameSite=Lax cookie. Post it again from here.
            return await _repost_page(request, services, app, provider_id, params)
    else:
        # Every parameter as received, one value each (the model bounds them; a value it
        # refuses, or a repeated one, makes a malformed answer the strategy refuses).
        query, refused = lenient(dict(request.query_params), FederationCallbackQuery)
        params = {k: v for k, v in msgspec.structs.asdict(query).items() if v is not None}
        if refused or len(request.query_params.getlist("state")) > 1:
            params["state"] = ""
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    try:
        outcome = await federation.callback(
            services,
            app,
            provider_id,
            params,
            nonce=nonce,
            meta=meta,
            browser=request,
        )
    except federation.Refused as exc:
        return _refused(request, services, app, exc.message, code=exc.code, status=exc.status)
    return await _after(request, services, app, outcome, meta)


async def _repost_page(
    request: Request,
    services: Services,
    app: AppRecord,
    provider_id: str,
    params: dict[str, str],
) -> Response:
    """The same-site re-post of a form_post answer (F9): the callback's own
    parameters only (the model's members), escaped by the template; the state only
    read (for the CSP's form-action: where the flow's redirects end), nothing used
    up or stored, no cookie set (a cross-site POST's answer must not replace this
    browser's CSRF seed)."""
    issuer = services.settings.issuer_for(app.app_id)
    form_targets = await federation.repost_targets(
        services, app, provider_id, params.get("state", "")
    )
    return render(
        request,
        services,
        app,
        "federation_repost.html",
        {
            "action": f"{issuer}/federation/{quote(provider_id, safe='')}/callback",
            "fields": sorted(params.items()),
        },
        scripts=True,
        issue_csrf=False,
        form_targets=form_targets,
    )


@cache
def _repost_script() -> bytes:
    return (Path(__file__).resolve().parent / "static" / "federation-repost.js").read_bytes()


@operation(
    Operation(
        "The federation re-post page's script (submits its form once)",
        responses={200: str},
        media_type="text/javascript",
        tags=("pages", "federation"),
    )
)
async def repost_script(request: Request) -> Response:
    current_app(request)  # unknown apps: 404 like every app route
    return Response(
        _repost_script(),
        media_type="text/javascript",
        headers={"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"},
    )


async def _after(
    request: Request,
    services: Services,
    app: AppRecord,
    outcome: federation.Outcome,
    meta: audit.RequestMeta,
) -> Response:
    """The flow after the upstream factor: the next page of the browser."""
    status = 303 if request.method == "POST" else 302
    if isinstance(outcome, federation.HandedOff):
        response = redirect(outcome.url, status)  # the first-party app's link_url, with the code
    elif isinstance(outcome, federation.Linked):
        response = redirect(account_page.account_url(services, app, "identity_linked"), status)
    elif isinstance(outcome, federation.NeedsLink):
        return link_page(request, services, app, outcome)  # the flow's cookie stays
    elif isinstance(outcome, engine.Pending):
        # The second-factor form's cookie gets this flow's nonce: the same binding.
        return await signin.pending(request, services, app, outcome, meta, _nonce(request, app))
    else:
        response = signin.signed_in(request, services, app, outcome)
    browser_session.clear_cookie(response, services.settings, app.app_id, NONCE_COOKIE + app.app_id)
    return response


# --- link confirmation ------------------------------------------------------------


def link_page(
    request: Request,
    services: Services,
    app: AppRecord,
    needs: federation.NeedsLink,
    *,
    error: str | None = None,
    notice: str | None = None,
    code_flow: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The link page. Its ways to prove the account are the app's (F11:
    :func:`federation.link_proofs`), the same for every account."""
    proofs = federation.link_proofs(services, app)
    return render(
        request,
        services,
        app,
        "federation_link.html",
        {
            "flow_token": needs.flow_token,
            "provider_name": needs.provider_name,
            "email": needs.email,
            "error": error,
            "notice": notice,
            "code_flow": code_flow,
            "proofs": proofs,
            "account_url": account_page.account_url(services, app),
        },
        status=status,
        headers=headers,
        form_targets=needs.form_targets,
        scripts="webauthn" in proofs,
    )


@operation(
    replace(
        _PAGE,
        summary="Hosted page: prove the existing account (its password, or a code mailed"
        " to it where the app signs in by mailed codes) and link the upstream identity"
        " to it, or decline",
        form=FederationLinkForm,
    )
)
async def link(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    try:
        raw = await read_form(request)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    form, _ = lenient(raw, FederationLinkForm)
    if not csrf.check(request, services.settings, app.app_id, form.csrf):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Go back to the"
            " application and start again.",
            code="csrf",
            status=403,
        )
    nonce = _nonce(request, app)
    if nonce is None or not form.flow_token:
        return expired(request, services, app)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    # Shown again after a wrong password or code: generic wording (nothing posted is
    # echoed but the mailed code's flow, which only works in this browser's flow).
    needs = federation.NeedsLink(flow_token=form.flow_token, provider_name="", email="")
    code_flow = form.code_flow or None

    def again(
        message: str | None,
        status: int,
        headers: dict[str, str] | None = None,
        *,
        notice: str | None = None,
    ) -> Response:
        return link_page(
            request,
            services,
            app,
            needs,
            error=message,
            notice=notice,
            code_flow=code_flow,
            status=status,
            headers=headers,
        )

    if form.decision == "send_code":
        try:
            code_flow = await federation.send_link_code(
                services, app, form.flow_token, nonce=nonce, meta=meta
            )
        except FlowExpired:
            return expired(request, services, app)
        except FeatureDisabled:
            return again("Prove the account with its password.", 400)
        except TooManyRequests as exc:
            return again("Too many codes asked for. Wait a few minutes.", 429, exc.headers)
        return again(None, 200, notice="We sent a 6-digit code to the address of the account.")

    confirm = form.decision == "link"
    proof: federation.LinkProof = "email_code" if form.proof == "email_code" else "password"
    payload: dict[str, Any]
    if form.assertion is not None:
        # The passkey element's post (/assets/passkeys.js): the assertion is the proof
        # and the confirmation (its button says "Link with a passkey").
        confirm, proof = True, "webauthn"
        try:
            payload = {"assertion": untrusted.loads(form.assertion)}
        except untrusted.UntrustedInput:
            return again(_PASSKEY_REFUSED, 400)
    elif proof == "email_code":
        if confirm and (not form.code or not code_flow):
            return again("Enter the code we sent to the address of the account.", 400)
        payload = {"flow_token": code_flow or "", "code": form.code or ""}
    else:
        if confirm and (not form.email or not form.password):
            return again("Enter the email address and the password of your account.", 400)
        payload = {"email": form.email or "", "password": form.password or ""}
    wrong = {
        "email_code": "The code is not right, or it has expired. Ask for a new one.",
        "webauthn": _PASSKEY_REFUSED,
    }.get(proof, "The email address or password is not right.")
    try:
        outcome = await federation.confirm_link(
            services,
            app,
            form.flow_token,
            nonce=nonce,
            proof=proof,
            payload=payload,
            confirm=confirm,
            meta=meta,
            browser=request,
        )
    except federation.Refused as exc:
        if exc.code == "wrong_account":
            # Another account's proof: this page again (P4: the same words as a
            # wrong password or code); the pending link stays.
            return again(wrong, 400)
        if exc.code == "link_not_confirmed":
            return _refused(
                request, services, app, "You chose not to link the accounts.", code=exc.code
            )
        return _refused(request, services, app, exc.message, code=exc.code, status=exc.status)
    except FlowExpired:
        return expired(request, services, app)
    except (InvalidCredentials, InvalidLinkOrCode, webauthn.PasskeyRefused):
        # One message for another account's proof and a wrong one (P4).
        return again(wrong, 400)
    except FeatureDisabled:
        return again("Prove the account with its password.", 400)
    except TooManyRequests as exc:
        return again("Too many attempts. Wait a few minutes, then try again.", 429, exc.headers)
    except EmailNotVerified:
        return again("Confirm your email address first, then link.", 403)
    except ServiceUnavailable as exc:
        return again("We are very busy right now. Try again in a moment.", 503, exc.headers)
    return await _after(request, services, app, outcome, meta)


@operation(
    Operation(
        "Hosted pages: request options for proving the account of a pending link with"
        " a passkey (CSRF form; no allowCredentials)",
        form=PasskeyOptionsForm,
        responses={200: WebAuthnRequestOptions},
        errors=(400, 403),
        tags=("pages", "federation"),
    )
)
async def link_passkey_options(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    try:
        form = convert(await read_form(request), PasskeyOptionsForm)
        if not csrf.check(request, services.settings, app.app_id, form.csrf):
            raise FlowExpired("this page has expired; reload it")
        nonce = _nonce(request, app)
        if nonce is None or not form.flow_token:
            raise FlowExpired()
        public_key = await federation.link_passkey_options(
            services, app, form.flow_token, nonce=nonce
        )
    except ApiError as exc:
        return JSONResponse(
            exc.to_problem(),
            status_code=exc.status,
            media_type="application/problem+json",
            headers={"cache-control": "no-store"},
        )
    return JSONResponse({"publicKey": public_key}, headers={"cache-control": "no-store"})


# --- the account page's part ---------------------------------------------------------


@operation(
    replace(
        _PAGE,
        summary="Hosted page: link another upstream provider to the signed-in account"
        " (needs a recent sign-in)",
        form=AccountForm,
    )
)
async def link_another(request: Request) -> Response:
    who = await account_page.recent_change(request)
    if isinstance(who, Response):
        return who
    services, app = who.services, who.app
    provider_id = who.form.provider_id or ""
    return await _begin(
        request, services, app, provider_id, {"link_user": who.user.sub}, user_id=who.user.id
    )


@operation(
    replace(
        _PAGE,
        summary="Hosted page: unlink one of the account's upstream identities (refused when"
        " it is the last way to sign in)",
        form=AccountForm,
        responses={303: None},
    )
)
async def unlink(request: Request) -> Response:
    who = await account_page.recent_change(request)
    if isinstance(who, Response):
        return who
    services, app = who.services, who.app
    try:
        target: uuid.UUID | None = uuid.UUID(request.path_params["identity_id"][:40])
    except ValueError:
        target = None
    async with services.router.enter(app) as conn:
        result = await federation.unlink(conn, app, who.user.id, target, who.meta)
    done = {"unlinked": "identity_unlinked", "last": "identity_last"}.get(result, "nothing")
    return redirect(account_page.account_url(services, app, done), 303)


def routes() -> list[BaseRoute]:
    return [
        Route("/federation/{provider_id}/start", start, methods=["GET"]),
        Route("/federation/{provider_id}/callback", callback, methods=["GET", "POST"]),
        Route("/assets/federation-repost.js", repost_script, methods=["GET"]),
        Route("/federation/link", link, methods=["POST"]),
        Route("/federation/link/passkey/options", link_passkey_options, methods=["POST"]),
        Route("/account/identities/link", link_another, methods=["POST"]),
        Route("/account/identities/{identity_id}/unlink", unlink, methods=["POST"]),
    ]
