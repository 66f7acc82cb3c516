"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), per app.

``GET|POST /oauth/logout`` with ``id_token_hint``, ``client_id``,
``post_logout_redirect_uri`` and ``state`` (section 2). O6:

* the user is signed out at once only with a valid ``id_token_hint`` of this
  app (section 2: the hint proves the relying party had the user's ID token)
  whose subject is the browser's user; otherwise the user confirms on a page
  (with a CSRF token), so a cross-site link cannot sign anyone out;
* ``post_logout_redirect_uri`` must be registered for the client, by exact
  string; anything else is shown on an error page and never redirected
  (section 3: an open redirector otherwise). ``state`` is passed back.

Signing out ends the browser session, every token session started from it
and the session named by the hint's ``sid``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.apps.policy import policy_of
from oneauth.errors import ApiError
from oneauth.http.contract import Operation, lenient, operation
from oneauth.http.gate import current_app
from oneauth.http.requests import read_form, request_meta
from oneauth.oauth import idtoken
from oneauth.oauth import redirect_uri as redirect_uris
from oneauth.oauth.authorize import response_uri, single_values
from oneauth.oauth.models import LogoutQuery
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.web import browser_session, csrf
from oneauth.web.browser_session import BrowserSession
from oneauth.web.models import LogoutForm
from oneauth.web.render import redirect, render

CONFIRM_TTL = 15 * 60


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    """A validated logout request awaiting the user's confirmation (sealed, app-bound)."""

    post_logout_redirect_uri: str | None
    state: str | None
    hint_sid: str | None
    expires: int

    def seal(self, box: SecretBox, app_id: str) -> str:
        data = json.dumps(asdict(self), separators=(",", ":")).encode()
        return box.seal(data, context=f"app:{app_id}/logout-request")

    @classmethod
    def unseal(cls, box: SecretBox, app_id: str, sealed: str | None) -> LogoutRequest | None:
        if not sealed or len(sealed) > 16_384:
            return None
        try:
            found = cls(**json.loads(box.open(sealed, context=f"app:{app_id}/logout-request")))
        except (SecretBoxError, ValueError, TypeError):
            return None
        return found if found.expires > time.time() else None


class _Refused(Exception):
    pass


def _page(
    request: Request,
    services: Services,
    app: AppRecord,
    template: str,
    status: int = 200,
    **context: Any,
) -> Response:
    targets = context.pop("form_targets", ())
    return render(request, services, app, template, context, status=status, form_targets=targets)


def _refused(request: Request, services: Services, app: AppRecord, message: str) -> Response:
    return _page(
        request,
        services,
        app,
        "error.html",
        400,
        title="This sign-out request is not valid",
        message=message,
        code="invalid_logout_request",
    )


@operation(
    Operation(
        "RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)",
        query=LogoutQuery,
        form=LogoutForm,
        responses={200: str, 302: None, 303: None},
        errors=(400, 403),
        error_format="html",
        media_type="text/html",
        tags=("pages",),
    )
)
async def logout(request: Request) -> Response:
    app = current_app(request)
    services = Services.of(request)
    params: LogoutQuery
    if request.method == "POST":
        try:
            form = await read_form(request)  # a repeated parameter: refused here
        except ApiError as exc:
            return _refused(request, services, app, exc.detail)
        posted, refused = lenient(form, LogoutForm)
        if posted.flow is not None or "flow" in refused:  # our own confirmation page
            return await _confirmed(request, services, app, posted)
        params, repeated = posted, set[str]()
    else:
        pairs, repeated = single_values(request.query_params.multi_items())
        params, refused = lenient(pairs, LogoutQuery)
    if repeated:
        return _refused(request, services, app, "A parameter was sent more than once.")
    issuer = services.settings.issuer_for(app.app_id)
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    state = params.state
    if "state" in refused:  # longer than MAX_STATE (LogoutQuery)
        return _refused(request, services, app, "The state parameter is too long.")
    if refused:  # longer than any token, client id or URI of ours
        return _refused(request, services, app, f"The {min(refused)} parameter is too long.")
    target = params.post_logout_redirect_uri
    try:
        async with services.router.enter(app) as conn:
            claims = None
            if params.id_token_hint:
                keys = await services.keys.get(app, conn)
                claims = idtoken.verify_hint(keys.jwks, issuer, app.app_id, params.id_token_hint)
                if claims is None:
                    raise _Refused("The sign-out request names a token this site did not issue.")
            client_id = params.client_id
            if claims is not None:
                hinted = idtoken.audience_client(claims)
                if client_id is not None and client_id != hinted:
                    raise _Refused("The sign-out request names two different applications.")
                client_id = hinted
            if target is not None:
                client = await services.clients.get(conn, app.app_id, client_id or "")
                if client is None or client.disabled:
                    raise _Refused("The sign-out request does not name a known application.")
                if target not in client.post_logout_redirect_uris:
                    raise _Refused(
                        "The address to return to is not registered for the application."
                    )
            session = await browser_session.current(
                conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
            )
            hint_sid = str(claims.get("sid")) if claims and claims.get("sid") else None
            # Section 2: with a hint for the browser's user (or no browser session),
            # sign out at once; with no hint and no session there is nothing to end.
            immediate = claims is not None and (session is None or session.sub == claims["sub"])
            nothing = claims is None and session is None
            if immediate:
                ended = await _sign_out(conn, session, hint_sid)
                await _audit(conn, meta, session, claims, ended, confirmed=False)
    except _Refused as exc:
        return _refused(request, services, app, str(exc))
    if immediate or nothing:
        done = 303 if request.method == "POST" else 302
        return _finish(request, services, app, target, state, done)
    confirm = LogoutRequest(target, state, hint_sid, int(time.time()) + CONFIRM_TTL)
    return _page(
        request,
        services,
        app,
        "logout.html",
        flow=confirm.seal(services.box, app.app_id),
        email=session.email if session else None,
        form_targets=_targets(target),
    )


def _targets(uri: str | None) -> tuple[str, ...]:
    origin = redirect_uris.origin(uri) if uri else None
    return (origin,) if origin else ()


async def _confirmed(
    request: Request, services: Services, app: AppRecord, form: LogoutForm
) -> Response:
    if not csrf.check(request, services.settings, app.app_id, form.csrf):
        return _refused(request, services, app, "This form has expired. Sign out again.")
    pending = LogoutRequest.unseal(services.box, app.app_id, form.flow)
    if pending is None:
        return _refused(request, services, app, "This sign-out request has expired.")
    if form.decision != "logout":
        return _page(
            request,
            services,
            app,
            "logged_out.html",
            title="You are still signed in",
            message="Nothing changed. You can close this page.",
        )
    meta = request_meta(request, app.app_id, services.ip_hash_key)
    async with services.router.enter(app) as conn:
        session = await browser_session.current(
            conn, request, app.app_id, idle_ttl=policy_of(app).refresh_idle_ttl
        )
        ended = await _sign_out(conn, session, pending.hint_sid)
        await _audit(conn, meta, session, None, ended, confirmed=True)
    return _finish(request, services, app, pending.post_logout_redirect_uri, pending.state, 303)


async def _sign_out(
    conn: asyncpg.Connection, session: BrowserSession | None, hint_sid: str | None
) -> int:
    """End the browser session, what it started, and the hint's session; count token sessions."""
    browser_ids = {session.id} if session else set()
    ended = 0
    if hint_sid:
        try:
            sid = uuid.UUID(hint_sid)
        except ValueError:
            sid = None
        if sid is not None:
            linked = await browser_session.of_token_session(conn, sid)
            if linked is not None:
                browser_ids.add(linked)
            ended += int(await sessions.revoke_session(conn, sid, reason="logout"))
    for browser_id in browser_ids:
        ended += await browser_session.end(conn, browser_id, reason="logout")
    return ended


async def _audit(
    conn: asyncpg.Connection,
    meta: audit.RequestMeta,
    session: BrowserSession | None,
    claims: dict[str, Any] | None,
    ended: int,
    *,
    confirmed: bool,
) -> None:
    sub = session.sub if session else (str(claims["sub"]) if claims else None)
    await audit.record(
        conn,
        "auth.logout",
        "success",
        meta,
        actor_type="user" if sub else None,
        actor_id=sub,
        target_type="browser_session" if session else None,
        target_id=str(session.id) if session else None,
        details={
            "via": "rp_initiated",
            "confirmed_by_user": confirmed,
            "id_token_hint": claims is not None,
            "token_sessions_ended": ended,
        },
    )


def _finish(
    request: Request,
    services: Services,
    app: AppRecord,
    target: str | None,
    state: str | None,
    status: int,
) -> Response:
    name = browser_session.cookie_name(app.app_id)
    if target is not None:
        response = redirect(response_uri(target, {"state": state}) if state else target, status)
    else:
        response = _page(
            request,
            services,
            app,
            "logged_out.html",
            title="You are signed out",
            message=f"You are signed out of {app.display_name}. You can close this page.",
        )
    browser_session.clear_cookie(response, services.settings, app.app_id, name)
    return response


def routes() -> list[BaseRoute]:
    return [Route("/oauth/logout", logout, methods=["GET", "POST"])]
