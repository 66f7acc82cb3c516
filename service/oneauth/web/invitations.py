"""The hosted invitation page: a mailed invitation link lands here (issue 13).

    GET  /invitations/accept?token=...   the org, what accepting does, and the next step
    POST /invitations/accept             accept (CSRF form), for the signed-in user

The GET never uses the invitation up: mail scanners fetch links, so only the
button's POST accepts (as the other mailed links, :mod:`.recovery_pages`). Without
a browser session the page offers the hosted sign-in and the registration page
(the same flow as the account page's, returning here afterwards); an
invitation-only app (``self_signup: false``) lets the invitee register from it
(:func:`invitation_for`, read by :mod:`.registration`). Signed in with another
address, or with the invited one not yet confirmed, the page says what to do and
nothing about any other account: it shows only the masked invited address and the
signed-in user's own.

Accepting is :func:`oneauth.orgs.invitations.accept`, the same call as ``POST
/v1/invitations/accept``: the exact address, verified, and single use under
concurrency. An invitation of app A names nothing at app B (its MAC is keyed by
the app, its row in A's schema), so the page says "not valid" there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode, urlsplit

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.apps.models import AppRecord
from oneauth.errors import ApiError, EmailNotVerified, InvitationEmailMismatch
from oneauth.http.contract import Operation, lenient, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.identity import one_time
from oneauth.identity import users as users_repo
from oneauth.identity.users import User
from oneauth.oauth.authorize import AuthorizationRequest, account_request
from oneauth.oauth.clients import Client
from oneauth.orgs import invitations
from oneauth.orgs import service as orgs
from oneauth.services import Services
from oneauth.web import csrf
from oneauth.web.account import current_session
from oneauth.web.common import continue_url, error_page
from oneauth.web.models import InvitationForm, LinkQuery
from oneauth.web.render import redirect, render, valid_logo_url

__all__ = ["invitation_for", "routes"]

PATH = "/invitations/accept"


def macs(services: Services, app: AppRecord) -> one_time.Macs:
    return one_time.Macs(services.settings.master_key, app.app_id)


def page_url(services: Services, app: AppRecord, token: str) -> str:
    return f"{services.settings.issuer_for(app.app_id)}{PATH}?{urlencode({'token': token})}"


def token_of(services: Services, app: AppRecord, authz: AuthorizationRequest) -> str | None:
    """The invitation token a sealed sign-in request returns to, if it is one of ours
    (only we seal requests, so only this page can have made it)."""
    if not authz.account:
        return None
    prefix = f"{services.settings.issuer_for(app.app_id)}{PATH}?"
    if not authz.redirect_uri.startswith(prefix):
        return None
    return lenient(dict(parse_qsl(urlsplit(authz.redirect_uri).query)), LinkQuery)[0].token


@dataclass(frozen=True, slots=True)
class InvitedTo:
    """The addresses an org has open invitations for (the org a token names)."""

    org_id: str
    addresses: frozenset[str]

    def admits(self, email_normalized: str) -> bool:
        return email_normalized in self.addresses


async def invited_to(
    services: Services, app: AppRecord, conn: asyncpg.Connection, token: str
) -> tuple[invitations.Preview, InvitedTo] | None:
    """The invitation behind ``token`` and whom its org invited (open invitations), or None."""
    preview = await invitations.peek(conn, macs(services, app), token)
    if preview is None:
        return None
    found = await invitations.list_open(conn, preview.org_id)
    addresses = frozenset(users_repo.stored_email_key(i.email) for i in found)
    return preview, InvitedTo(preview.org_id, addresses)


async def invitation_for(
    services: Services, app: AppRecord, conn: asyncpg.Connection, authz: AuthorizationRequest
) -> InvitedTo | None:
    """The open invitation a registration continues (``ensure_self_signup``'s hook):
    its invitee may register where the app is invitation-only, with an invited
    address of that org only."""
    token = token_of(services, app, authz)
    found = None if token is None else await invited_to(services, app, conn, token)
    if found is None or found[0].state != "open":
        return None
    return found[1]


@dataclass(frozen=True, slots=True)
class OrgView:
    """The org's branding inside the app's (the page's header is the app's)."""

    name: str
    logo_url: str | None


def _org_view(preview: invitations.Preview) -> OrgView:
    return OrgView(preview.org_name, valid_logo_url(preview.branding.get("logo_url")))


def _invalid(request: Request, services: Services, app: AppRecord) -> Response:
    return error_page(
        request,
        services,
        app,
        "This invitation is not valid any more: it was used, revoked or has expired,"
        " or it was made for another application. Ask for a new one.",
        title="This invitation does not work",
        code="invitation_invalid",
    )


def _sign_in_request(
    services: Services, app: AppRecord, client: Client, token: str, *, fresh: bool
) -> AuthorizationRequest:
    """The hosted sign-in of the account page, returning here instead (``fresh``: a
    new sign-in, for a browser signed in with another account)."""
    issuer = services.settings.issuer_for(app.app_id)
    wanted = account_request(client, issuer, fresh=fresh)
    return replace(wanted, redirect_uri=page_url(services, app, token))


@operation(
    Operation(
        "Hosted page: an organization invitation link lands here (its GET accepts nothing)",
        query=LinkQuery,
        responses={200: str},
        errors=(400,),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def show(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    token = lenient(request.query_params, LinkQuery)[0].token
    if token is None:
        return _invalid(request, services, app)
    async with services.router.enter(app) as conn:
        return await _page(request, services, app, conn, token)


async def _page(
    request: Request,
    services: Services,
    app: AppRecord,
    conn: asyncpg.Connection,
    token: str,
    *,
    status: int = 200,
    mismatch: bool = False,
) -> Response:
    found = await invited_to(services, app, conn, token)
    if found is None:
        return _invalid(request, services, app)
    preview, invited = found
    session = await current_session(services, app, conn, request)
    user = await users_repo.by_id(conn, session.user_id) if session else None
    if preview.state != "open":
        if (
            preview.state == "accepted"
            and user is not None
            and await orgs.membership(conn, preview.org_id, user.id) is not None
        ):
            return _joined(request, services, app, preview)  # a second click, a reload
        return _invalid(request, services, app)
    client = await services.clients.default_client(conn, app.app_id)
    if client is None:
        return error_page(
            request, services, app, "This app has no first-party client.", code="no_client"
        )
    issuer = services.settings.issuer_for(app.app_id)
    sign_in = _sign_in_request(services, app, client, token, fresh=user is not None)
    register = replace(sign_in, prompt=("create",))
    state = "sign_in"
    if user is not None:
        state = _state(user, invited, mismatch=mismatch)
    return render(
        request,
        services,
        app,
        "invitation.html",
        {
            "org": _org_view(preview),
            "state": state,
            "masked_email": preview.email_masked,
            "expires": preview.expires_at.strftime("%d %B %Y"),
            "email": user.email if user else None,
            "token": token,
            "sign_in_url": continue_url(issuer, sign_in.seal(services.box, app.app_id)),
            "register_url": f"{issuer}/register?"
            + urlencode({"flow": register.seal(services.box, app.app_id)}),
        },
        status=status,
    )


def _state(user: User, invited: InvitedTo, *, mismatch: bool) -> str:
    if mismatch or not invited.admits(users_repo.stored_email_key(user.email)):
        return "wrong_account"
    return "ready" if user.email_verified else "unverified"


def _joined(
    request: Request, services: Services, app: AppRecord, preview: invitations.Preview
) -> Response:
    return render(
        request, services, app, "invitation.html", {"org": _org_view(preview), "state": "joined"}
    )


@operation(
    Operation(
        "Hosted page: accept an organization invitation (CSRF form, signed-in browser)",
        form=InvitationForm,
        responses={200: str, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def accept(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    try:
        raw = await read_form(request)
    except ApiError as exc:
        return error_page(request, services, app, exc.detail, code="invalid_request")
    form = lenient(raw, InvitationForm)[0]
    if not csrf.check(request, services.settings, app.app_id, form.csrf):
        return error_page(
            request,
            services,
            app,
            "This form has expired or did not come from this site. Start again.",
            code="csrf",
            status=403,
        )
    token = form.token
    if token is None:
        return _invalid(request, services, app)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:
        session = await current_session(services, app, conn, request)
        user = await users_repo.by_id(conn, session.user_id) if session else None
    if user is None:
        # Signed out meanwhile: the page again, which offers the sign-in.
        return redirect(page_url(services, app, token), 303)
    try:
        async with services.router.enter(app) as conn:
            await invitations.accept(conn, macs(services, app), token, user, meta=meta)
    except (InvitationEmailMismatch, EmailNotVerified) as exc:
        # The page explains it: another account, or confirm the address first.
        async with services.router.enter(app) as conn:
            return await _page(
                request,
                services,
                app,
                conn,
                token,
                status=403,
                mismatch=isinstance(exc, InvitationEmailMismatch),
            )
    except ApiError:  # used, revoked, expired meanwhile (or a second click)
        pass
    async with services.router.enter(app) as conn:
        return await _page(request, services, app, conn, token)


def routes() -> list[BaseRoute]:
    return [
        Route(PATH, show, methods=["GET"]),
        Route(PATH, accept, methods=["POST"]),
    ]
