"""The hosted account page, "Security" (issue 12): what the consent page promises.

    GET  /account                                   sign-ins, consents, second factors
    POST /account/sessions/{session_id}/end         end one sign-in ("Sign out" for this one)
    POST /account/consents/{client_id}/withdraw     withdraw a consent
    POST /account/factors/{factor_id}/rename        rename a second factor
    POST /account/factors/{factor_id}/remove        remove one (mails the user)
    POST /account/totp                              add an authenticator app: QR code
    POST /account/totp/confirm                      activate it with one code
    POST /account/recovery-codes                    a new set of recovery codes, shown once
    POST /account/reauth                            sign in again (the passkey button's
                                                    way back when its sign-in is too old)

"Add a passkey" is the WebAuthn page's (web/passkey_pages.py, /account/passkeys),
driven by /assets/passkeys.js from templates/account_passkey.html.

For the user of this app's browser session only (the cookie is the app's, its row
in the app's schema): without one, the page sends the browser through the hosted
sign-in (the same flow as an authorization request, with no client to return to)
and back. Every change is a POST with the CSRF token, made by the same service
calls as the JSON API (:mod:`oneauth.account`), then 303 back to the page with a
fixed notice (nothing from the request is reflected).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.account import service as account
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.audit import RequestMeta
from oneauth.errors import (
    ApiError,
    Conflict,
    FlowExpired,
    InvalidCode,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from oneauth.flows import engine, federation, mfa
from oneauth.http.contract import Operation, convert, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.identity import factors as factors_repo
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.oauth.authorize import account_request
from oneauth.services import Services
from oneauth.strategies import webauthn
from oneauth.web import browser_session, csrf
from oneauth.web.browser_session import BrowserSession
from oneauth.web.common import continue_url, error_page
from oneauth.web.models import AccountForm
from oneauth.web.render import redirect, render
from oneauth.web.signin import qr_svg

# ?done=<key> -> the notice shown; only these texts can appear.
NOTICES = {
    "session_ended": "That sign-in has ended.",
    "consent_withdrawn": "Access withdrawn. The application was signed out.",
    "factor_renamed": "Renamed.",
    "factor_removed": "Second factor removed. We sent you an email about it.",
    "bad_name": "Give it a name of 1 to 100 characters.",
    "nothing": "Nothing changed: it was already gone.",
    "totp_added": "Authenticator app added.",
    "passkey_added": "Passkey added.",
    "no_factor": "Recovery codes back up a second factor: add an authenticator app or a"
    " passkey first.",
    "totp_unavailable": "This app does not offer authenticator apps.",
    "totp_expired": "That setup has expired. Start again.",
    # Linked sign-in (issue 14, web/federation_pages.py).
    "identity_linked": "Sign-in with that account is linked. We sent you an email about it.",
    "identity_unlinked": "Unlinked: that account no longer signs you in here.",
    "identity_last": "That is your only way to sign in: set a password or link another"
    " account first.",
}


def account_url(services: Services, app: AppRecord, done: str | None = None) -> str:
    base = f"{services.settings.issuer_for(app.app_id)}/account"
    return f"{base}?done={done}" if done else base


async def current_session(
    services: Services, app: AppRecord, conn: asyncpg.Connection, request: Request
) -> BrowserSession | None:
    """This app's live browser session, if the MFA policy would issue it now: one made
    before the user enrolled a factor (or before the app required one) counts as none,
    as on the authorization endpoint, so the page asks for a sign-in with the factor."""
    session = await browser_session.current(
        conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
    )
    if session is None or not await engine.session_satisfies(
        conn, app, session.user_id, session.amr
    ):
        return None
    return session


async def sign_in_first(
    request: Request,
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    *,
    fresh: bool = False,
    hint: str | None = None,
    mfa: bool = False,
) -> Response:
    """Send the browser through the hosted sign-in, back to this page afterwards
    (``fresh``: a new sign-in; ``mfa``: with the second factor)."""
    client = await services.clients.default_client(conn, app.app_id)
    if client is None:
        return error_page(
            request, services, app, "This app has no first-party client.", code="no_client"
        )
    issuer = services.settings.issuer_for(app.app_id)
    wanted = account_request(client, issuer, fresh=fresh, hint=hint, mfa=mfa)
    sealed = wanted.seal(services.box, app.app_id)
    return redirect(continue_url(issuer, sealed), 302 if request.method == "GET" else 303)


@operation(
    Operation(
        "Hosted page: the account's Security page (sign-ins, consents, second factors)",
        responses={200: str, 302: None},
        errors=(400,),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def page(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    async with services.router.enter(app) as conn:
        session = await current_session(services, app, conn, request)
        if session is None:
            return await sign_in_first(request, services, app, conn)
        sessions = await account.list_sessions(conn, session.user_id, current=session.id)
        consents = await account.list_consents(conn, session.user_id)
        user = await users_repo.by_id(conn, session.user_id)
        # "Linked sign-in" (issue 14): shown where the app has upstream providers.
        linked, linkable = await federation.account_section(conn, session.user_id)
    if user is None:  # removed meanwhile; the session check above makes this rare
        return error_page(request, services, app, "This account no longer exists.", code="gone")
    # The same call as GET /v1/mfa (flows.mfa), for the browser session's user.
    listed, _ = await mfa.list_factors(services, app, bearer=None, user=user)
    factors = [_factor_row(item) for item in listed]
    notice = NOTICES.get(request.query_params.get("done", ""))
    allowed = policy_of(app).mfa_factors
    # "Add a passkey" (account_passkey.html): its script, where passkeys work here.
    passkeys = webauthn.offered_on_hosted_pages(services.settings, app)
    return render(
        request,
        services,
        app,
        "account.html",
        {
            "email": session.email,
            "sessions": sessions,
            "consents": consents,
            "factors": factors,
            "notice": notice,
            "totp": "totp" in allowed,
            "passkeys": passkeys,
            # Regenerating needs a factor to back up (flows.mfa.regenerate_recovery_codes).
            "recovery": any(item.factor.kind == "recovery_codes" for item in listed),
            "linked": linked,
            "linkable": linkable,
        },
        scripts=passkeys,
    )


_KIND_LABEL = {
    "totp": "Authenticator app",
    "webauthn": "Passkey",
    "recovery_codes": "Recovery codes",
}


def _factor_row(item: mfa.Listed) -> dict[str, Any]:
    f = item.factor
    label = _KIND_LABEL.get(f.kind, f.kind)
    if item.codes_left is not None:
        label += f" ({item.codes_left} left)"
    if not f.confirmed:
        label += " (not activated)"
    return {
        "id": str(f.id),
        "name": f.name,
        "label": label,
        "last_used": f.last_used_at.strftime("%Y-%m-%d") if f.last_used_at else None,
        # Recovery codes are a set, not a named device; the rest can be renamed.
        "renamable": f.kind != "recovery_codes",
    }


Change = Callable[[asyncpg.Connection, BrowserSession, RequestMeta], Awaitable[str | Response]]


async def _checked_form(
    request: Request, services: Services, app: AppRecord
) -> AccountForm | Response:
    """The POSTed form, if it parses and carries this browser's CSRF token."""
    try:
        raw = await read_form(request)
        form = convert(raw, AccountForm)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    if not csrf.check(request, services.settings, app.app_id, form.csrf):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Reload the page.",
            code="csrf",
            status=403,
        )
    return form


async def _change(request: Request, change: Change) -> Response:
    """A POST of the page: its form and CSRF check, the browser session, ``change``
    (returns a notice key, or a response of its own), then back to the page."""
    app = current_app(request)
    services = Services.of(request)
    form = await _checked_form(request, services, app)
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:
        session = await current_session(services, app, conn, request)
        if session is None:
            return await sign_in_first(request, services, app, conn)
        outcome = await change(conn, session, meta)
    if isinstance(outcome, Response):
        return outcome
    return redirect(account_url(services, app, outcome), 303)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@operation(
    Operation(
        "Hosted page: end one of the user's sign-ins",
        form=AccountForm,
        responses={303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def end_session(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    target = _uuid(request.path_params["session_id"])

    async def change(
        conn: asyncpg.Connection, session: BrowserSession, meta: RequestMeta
    ) -> str | Response:
        if target is None or not await account.end_session(conn, session.user_id, target, meta):
            return "nothing"
        if target != session.id:
            return "session_ended"
        # "Sign out" of this browser: its cookie goes too.
        response = redirect(account_url(services, app), 303)
        browser_session.clear_cookie(
            response, services.settings, app.app_id, browser_session.cookie_name(app.app_id)
        )
        return response

    return await _change(request, change)


@operation(
    Operation(
        "Hosted page: withdraw a consent (ends that client's sessions of the user)",
        form=AccountForm,
        responses={303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def withdraw_consent(request: Request) -> Response:
    client_id = request.path_params["client_id"][:200]

    async def change(
        conn: asyncpg.Connection, session: BrowserSession, meta: RequestMeta
    ) -> str | Response:
        ended = await account.withdraw(conn, session.user_id, client_id, meta)
        return "nothing" if ended is None else "consent_withdrawn"

    return await _change(request, change)


FactorAct = Callable[
    [Services, AppRecord, RequestMeta, User, uuid.UUID, AccountForm], Awaitable[str]
]


@dataclass(frozen=True, slots=True)
class Changer:
    """What a change of the user's factors runs with: the app, the checked form, the
    request's audit metadata and the browser session's user."""

    services: Services
    app: AppRecord
    form: AccountForm
    meta: RequestMeta
    user: User
    session: BrowserSession


async def _recent(request: Request) -> Changer | Response:
    """The caller of a change of the user's factors. It needs a recent sign-in, with
    the second factor if the user has one (the API's rule, ``flows.mfa.change_refusal``);
    else the browser signs in again and comes back to the page, where the user retries."""
    app = current_app(request)
    services = Services.of(request)
    form = await _checked_form(request, services, app)
    if isinstance(form, Response):
        return form
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:
        session = await current_session(services, app, conn, request)
        if session is None:
            return await sign_in_first(request, services, app, conn)
        user = await users_repo.by_id(conn, session.user_id)
        if user is None:
            return await sign_in_first(request, services, app, conn)
        items = await factors_repo.of_user(conn, user.id)
        if mfa.change_refusal(app, session.auth_time.timestamp(), session.amr, items):
            second = mfa.has_factor(items) and policy_of(app).mfa != "off"
            return await sign_in_first(
                request, services, app, conn, fresh=True, hint=user.email, mfa=second
            )
    return Changer(services, app, form, meta, user, session)


recent_change = _recent  # the federation pages' account changes (issue 14)


async def _factor_change(request: Request, act: FactorAct) -> Response:
    """A change of one factor (rename, remove), after ``_recent``."""
    who = await _recent(request)
    if isinstance(who, Response):
        return who
    services, app, meta, user, form = who.services, who.app, who.meta, who.user, who.form
    target = _uuid(request.path_params["factor_id"])
    if target is None:
        return redirect(account_url(services, app, "nothing"), 303)
    try:
        done = await act(services, app, meta, user, target, form)
    except NotFound:
        done = "nothing"
    except ValidationFailed:
        done = "bad_name"
    return redirect(account_url(services, app, done), 303)


@operation(
    Operation(
        "Hosted page: rename a second factor (needs a recent sign-in)",
        form=AccountForm,
        responses={303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def rename_factor(request: Request) -> Response:
    async def act(
        services: Services,
        app: AppRecord,
        meta: RequestMeta,
        user: User,
        factor_id: uuid.UUID,
        form: AccountForm,
    ) -> str:
        name = (form.name or "").strip()
        if not name:
            return "bad_name"
        # The same call as PATCH /v1/mfa/{factor_id}.
        await mfa.rename(
            services, app, meta, bearer=None, factor_id=factor_id, name=name, user=user
        )
        return "factor_renamed"

    return await _factor_change(request, act)


@operation(
    Operation(
        "Hosted page: remove a second factor (needs a recent sign-in; mails the user)",
        form=AccountForm,
        responses={303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def remove_factor(request: Request) -> Response:
    async def act(
        services: Services,
        app: AppRecord,
        meta: RequestMeta,
        user: User,
        factor_id: uuid.UUID,
        form: AccountForm,
    ) -> str:
        del form
        # The same call as DELETE /v1/mfa/{factor_id}.
        await mfa.remove(services, app, meta, bearer=None, factor_id=factor_id, user=user)
        return "factor_removed"

    return await _factor_change(request, act)


def _totp_page(
    request: Request,
    who: Changer,
    started: mfa.TotpStarted,
    *,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    secret = started.secret
    return render(
        request,
        who.services,
        who.app,
        "account_totp.html",
        {
            "factor_id": str(started.factor_id),
            "secret_groups": [secret[i : i + 4] for i in range(0, len(secret), 4)],
            "qr_svg": qr_svg(started.otpauth_uri),
            "error": error,
            "account_url": account_url(who.services, who.app),
        },
        status=status,
        headers=headers,
    )


@operation(
    Operation(
        "Hosted page: add an authenticator app (needs a recent sign-in; shows its QR code)",
        form=AccountForm,
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def add_totp(request: Request) -> Response:
    who = await _recent(request)
    if isinstance(who, Response):
        return who
    name = (who.form.name or "").strip() or None
    try:
        # The same call as POST /v1/mfa/totp.
        started = await mfa.totp_begin(
            who.services, who.app, who.meta, bearer=None, name=name, user=who.user
        )
    except ValidationFailed:
        return redirect(account_url(who.services, who.app, "totp_unavailable"), 303)
    return _totp_page(request, who, started)


@operation(
    Operation(
        "Hosted page: activate the authenticator app with one code (recovery codes shown"
        " once when first made)",
        form=AccountForm,
        responses={200: str, 303: None},
        errors=(400, 403, 429),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def confirm_totp(request: Request) -> Response:
    who = await _recent(request)
    if isinstance(who, Response):
        return who
    services, app = who.services, who.app
    factor_id = _uuid(who.form.factor_id or "")
    if factor_id is None:
        return redirect(account_url(services, app, "totp_expired"), 303)
    try:
        # The same call as POST /v1/mfa/totp/confirm.
        done = await mfa.totp_confirm(
            services,
            app,
            who.meta,
            factor_id=factor_id,
            code=who.form.code or "",
            bearer=None,
            user=who.user,
            browser_session_id=who.session.id,
        )
    except (InvalidCode, TooManyRequests) as exc:
        try:
            started = await mfa.totp_pending(
                services, app, flow_token=None, binding=None, factor_id=factor_id, user=who.user
            )
        except FlowExpired:
            return redirect(account_url(services, app, "totp_expired"), 303)
        return _totp_page(
            request, who, started, error=exc.detail, status=exc.status, headers=exc.headers
        )
    if done.recovery_codes:
        return _codes_page(request, who, done.recovery_codes, added=True)
    return redirect(account_url(services, app, "totp_added"), 303)


def _codes_page(request: Request, who: Changer, codes: list[str], *, added: bool) -> Response:
    return render(
        request,
        who.services,
        who.app,
        "codes.html",
        {
            "codes": codes,
            "added": added,
            "regenerated": not added,
            "next_url": account_url(who.services, who.app, "totp_added" if added else None),
        },
    )


@operation(
    Operation(
        "Hosted page: a new set of recovery codes, shown once; the old set stops working"
        " (needs a recent sign-in)",
        form=AccountForm,
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def regenerate_codes(request: Request) -> Response:
    who = await _recent(request)
    if isinstance(who, Response):
        return who
    try:
        # The same call as POST /v1/mfa/recovery-codes.
        codes = await mfa.regenerate_recovery_codes(
            who.services, who.app, who.meta, bearer=None, user=who.user
        )
    except Conflict:
        return redirect(account_url(who.services, who.app, "no_factor"), 303)
    return _codes_page(request, who, codes, added=False)


@operation(
    Operation(
        "Hosted page: sign in again, then come back to the account page",
        form=AccountForm,
        responses={303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def reauth(request: Request) -> Response:
    """Where the passkey button goes when the server wants a fresher sign-in (its
    options answer 403 insufficient_user_authentication): ``_recent`` sends the
    browser to sign in (with the second factor, if the user has one), else back."""
    who = await _recent(request)
    if isinstance(who, Response):
        return who
    return redirect(account_url(who.services, who.app), 303)


def routes() -> list[BaseRoute]:
    return [
        Route("/account", page, methods=["GET"]),
        Route("/account/sessions/{session_id}/end", end_session, methods=["POST"]),
        Route("/account/consents/{client_id}/withdraw", withdraw_consent, methods=["POST"]),
        Route("/account/factors/{factor_id}/rename", rename_factor, methods=["POST"]),
        Route("/account/factors/{factor_id}/remove", remove_factor, methods=["POST"]),
        Route("/account/totp", add_totp, methods=["POST"]),
        Route("/account/totp/confirm", confirm_totp, methods=["POST"]),
        Route("/account/recovery-codes", regenerate_codes, methods=["POST"]),
        Route("/account/reauth", reauth, methods=["POST"]),
    ]
