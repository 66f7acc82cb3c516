"""The admin console's pages under ``/console`` (issue 15).

    GET  /console                                   302 to /console/
    GET  /console/                                  the app picker (search, pages, recent)
    GET  /console/login                             start signing in at the platform app
    GET  /console/callback                          the platform app's redirect back
    POST /console/logout                            end the console session
    GET  /console/assets/console.css                the console's stylesheet
    GET  /console/apps/{app_id}                     one app: overview
    GET  /console/apps/{app_id}/users               users (search by email prefix)
    GET  /console/apps/{app_id}/users/{user_id}     one user: sessions, factors, ...
    POST /console/apps/{app_id}/users/{user_id}/disable|enable|sessions/revoke|mfa/reset
    GET  /console/apps/{app_id}/orgs                organizations
    GET|POST /console/apps/{app_id}/clients         clients; create shows the secret once
    GET  /console/apps/{app_id}/keys                signing keys; POST .../keys/rotate
    GET|POST /console/apps/{app_id}/settings        settings with a branding preview
    GET  /console/assets/preview.css                the branding preview's colours
    GET  /console/apps/{app_id}/audit               the audit log with filters

Views stay thin: find the operator's session and grant, call the app's admin
API (:mod:`oneauth.console.api`) and render its answer. An app the operator has
no grant for answers 404 exactly like an unknown app. Every POST needs the
session's CSRF token and a same-origin request; a viewer's pages have no
buttons, and the API refuses a viewer's write anyway (its token lacks the
``:write`` scopes).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import msgspec
from starlette import routing
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from oneauth.console import grants, rp
from oneauth.console import session as sessions
from oneauth.console.api import AdminApi
from oneauth.console.grants import PickerApp
from oneauth.console.models import (
    ActionForm,
    AuditQuery,
    CallbackQuery,
    ClientForm,
    CursorQuery,
    KeyRotateForm,
    LoginQuery,
    PickerQuery,
    PreviewCssQuery,
    SettingsForm,
    SettingsQuery,
    UsersQuery,
)
from oneauth.console.pages import preview_stylesheet, redirect, render, stylesheet
from oneauth.console.session import ConsoleSession
from oneauth.errors import ApiError
from oneauth.http.contract import Operation, lenient, operation
from oneauth.http.requests import read_form
from oneauth.services import Services
from oneauth.web.render import DEFAULT_COLOR, _text_on, valid_color, valid_logo_url

PAGE_SIZE = 50
TAGS = ("console",)
_PAGE = {200: str, 302: None}
_POST = {303: None, 200: str}
_PAGE_ERRORS = (400, 403, 404, 503)


def _page_op(summary: str, query: type[msgspec.Struct] | None = None) -> Operation:
    return Operation(
        summary,
        query=query,
        responses=_PAGE,
        errors=_PAGE_ERRORS,
        error_format="html",
        media_type="text/html",
        tags=TAGS,
    )


def _post_op(summary: str, form: type[msgspec.Struct] = ActionForm) -> Operation:
    return Operation(
        summary,
        form=form,
        responses=_POST,
        errors=(*_PAGE_ERRORS, 409),
        error_format="html",
        media_type="text/html",
        tags=TAGS,
    )


# ---------------------------------------------------------------- helpers


def _login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/console/login?" + urlencode({"next": here})


async def _session(request: Request, services: Services) -> ConsoleSession | None:
    async with services.pool.acquire() as conn:
        return await sessions.current(conn, request)


def _message(
    request: Request,
    services: Services,
    session: ConsoleSession | None,
    title: str,
    message: str,
    status: int,
    app: PickerApp | None = None,
) -> Response:
    return render(
        request,
        services,
        "message.html",
        {"title": title, "message": message, "app": app},
        session=session,
        status=status,
    )


def _not_found(request: Request, services: Services, session: ConsoleSession | None) -> Response:
    return _message(
        request,
        services,
        session,
        "Not found",
        "There is no such app, or you have no grant for it.",
        404,
    )


class AppContext:
    """One page of one app: the operator's session, grant and admin API client."""

    def __init__(self, request: Request, services: Services, session: ConsoleSession) -> None:
        self.request = request
        self.services = services
        self.session = session
        self.grant: PickerApp
        self.api: AdminApi

    @property
    def can_write(self) -> bool:
        return self.grant.role == "admin"

    def page(self, template: str, context: Mapping[str, Any], status: int = 200) -> Response:
        values = {
            "app": self.grant,
            "can_write": self.can_write,
            "base": f"/console/apps/{self.grant.app_id}",
            **context,
        }
        return render(
            self.request, self.services, template, values, session=self.session, status=status
        )

    def refused(self, answer: httpx.Response) -> Response:
        """A page for an answer of the admin API that is not a success."""
        status = answer.status_code
        try:
            body = answer.json()
        except ValueError:
            body = {}
        detail = str(body.get("detail") or body.get("title") or "the admin API refused")
        code = str(body.get("code") or "")
        shown = 404 if status == 404 else 403 if status in (401, 403) else 400
        if status in (409, 412, 428):
            shown = 409
        if status >= 500:
            shown = 503  # the app's database, not the operator's input
        title = {404: "Not found", 403: "Not allowed", 409: "Conflict", 503: "Unavailable"}.get(
            shown, "Refused"
        )
        return render(
            self.request,
            self.services,
            "message.html",
            {"title": title, "message": detail, "code": code, "app": self.grant},
            session=self.session,
            status=shown,
        )


View = Callable[[AppContext], Awaitable[Response]]


async def _app_context(
    request: Request, *, post: bool = False
) -> tuple[AppContext | None, Response | None]:
    """The operator's context at the app of the path, or the answer instead
    (sign-in, 404 for an unknown or ungranted app, 403 for a failed CSRF check)."""
    services = Services.of(request)
    app_id = request.path_params["app_id"]
    async with services.pool.acquire() as conn:
        session = await sessions.current(conn, request)
        if session is None:
            # A POST is never replayed after sign-in: back to the page it came from.
            target = f"/console/apps/{quote(app_id)}" if post else None
            url = "/console/login?" + urlencode({"next": target}) if target else None
            return None, redirect(url or _login_url(request), 303 if post else 302)
        grant = await grants.grant_for(conn, session.operator_sub, app_id)
    if grant is None:
        return None, _not_found(request, services, session)
    record = await services.registry.get(app_id)
    if record is None or record.status != "active":
        return None, _message(
            request,
            services,
            session,
            "Unavailable",
            "This app is suspended: its admin API does not answer.",
            404,
            app=grant,
        )
    ctx = AppContext(request, services, session)
    ctx.grant = grant
    ctx.api = AdminApi(request, services, record, grant, session)
    return ctx, None


async def _form(request: Request, ctx: AppContext, model: type[Any]) -> Any:
    """The POSTed form as ``model`` after the CSRF check; None when it fails."""
    try:
        data = await read_form(request)
    except ApiError:
        return None
    form, _ = lenient(data, model)
    if not sessions.csrf_ok(request, ctx.services.settings, ctx.session, form.csrf):
        return None
    return form


def _csrf_refused(ctx: AppContext) -> Response:
    return ctx.page(
        "message.html",
        {
            "title": "Not allowed",
            "message": "This form has expired or did not come from the console. Reload the page.",
            "code": "csrf_failed",
        },
        status=403,
    )


def _json(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return {}


# ---------------------------------------------------------------- sign-in


@operation(_page_op("Admin console: to the app picker"))
async def console_root(request: Request) -> Response:
    return redirect("/console/")


@operation(_page_op("Admin console: sign in at the platform app (code + PKCE)", LoginQuery))
async def login(request: Request) -> Response:
    services = Services.of(request)
    query, _ = lenient(dict(request.query_params), LoginQuery)
    url, sealed = rp.begin(services.settings, services.box, query.next or "/console/")
    response = redirect(url)
    sessions.set_cookie(response, services.settings, rp.LOGIN_COOKIE, sealed, rp.LOGIN_TTL)
    return response


@operation(_page_op("Admin console: the platform app's redirect back", CallbackQuery))
async def callback(request: Request) -> Response:
    services = Services.of(request)
    query, _ = lenient(dict(request.query_params), CallbackQuery)
    pending = rp.pending_of(request, services.box)
    if pending is None or query.error or not query.code or not query.state:
        reason = (
            "The sign-in was cancelled or refused."
            if query.error
            else "This sign-in has expired or was started elsewhere. Sign in again."
        )
        return _message(request, services, None, "Sign-in failed", reason, 400)
    if query.iss is not None and query.iss != rp.issuer(services.settings):
        # RFC 9207: the answer names another issuer (a mix-up attack); refuse it.
        return _message(
            request, services, None, "Sign-in failed", "The answer came from another issuer.", 400
        )
    try:
        operator = await rp.finish(request.app, services.settings, pending, query.code, query.state)
    except rp.SignInFailed as exc:
        return _message(request, services, None, "Sign-in failed", str(exc), 400)
    async with services.pool.acquire() as conn:
        await sessions.prune(conn)
        raw = await sessions.create(
            conn,
            services.box,
            operator_sub=operator.sub,
            operator_email=operator.email,
            tokens=operator.tokens,
        )
    response = redirect(pending.next)
    sessions.set_cookie(response, services.settings, sessions.COOKIE, raw, sessions.ABSOLUTE_TTL)
    sessions.clear_cookie(response, services.settings, rp.LOGIN_COOKIE)
    return response


@operation(_post_op("Admin console: sign out (and out of the platform app)"))
async def logout(request: Request) -> Response:
    """Ends the console session, then the platform app's browser session too
    (RP-initiated logout with the ID token as the hint, back to /console/), so the
    next sign-in asks for the password again instead of reusing it silently."""
    services = Services.of(request)
    settings = services.settings
    session = await _session(request, services)
    target = "/console/signed-out"
    if session is not None:
        try:
            data = await read_form(request)
        except ApiError:
            data = {}
        form, _ = lenient(data, ActionForm)
        if not sessions.csrf_ok(request, settings, session, form.csrf):
            return _message(
                request, services, session, "Not allowed", "Reload the page and try again.", 403
            )
        async with services.pool.acquire() as conn:
            held = await sessions.tokens(conn, services.box, session)
            await sessions.delete(conn, request)
        id_token = held.get("id_token") if isinstance(held, dict) else None
        if isinstance(id_token, str):
            query = urlencode(
                {
                    "id_token_hint": id_token,
                    "post_logout_redirect_uri": settings.public_url + "/console/",
                }
            )
            target = f"{rp.issuer(settings)}/oauth/logout?{query}"
    response = redirect(target, 303)
    sessions.clear_cookie(response, settings, sessions.COOKIE)
    return response


@operation(_page_op("Admin console: signed out"))
async def signed_out(request: Request) -> Response:
    return _message(
        request, Services.of(request), None, "Signed out", "You have left the console.", 200
    )


@operation(
    Operation(
        "Admin console: its stylesheet",
        responses={200: str},
        media_type="text/css",
        tags=TAGS,
    )
)
async def style(request: Request) -> Response:
    return Response(
        stylesheet(),
        media_type="text/css",
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


# ---------------------------------------------------------------- picker


@operation(_page_op("Admin console: the apps you may administer", PickerQuery))
async def picker(request: Request) -> Response:
    """One SQL query per page (grants, the page of apps, the recent apps)."""
    services = Services.of(request)
    query, _ = lenient(dict(request.query_params), PickerQuery)
    search = (query.q or "").strip() or None
    async with services.pool.acquire() as conn:
        session = await sessions.current(conn, request)
        if session is None:
            return redirect(_login_url(request))
        page = await grants.picker(
            conn, session.operator_sub, search=search, after=query.after, limit=PAGE_SIZE
        )
    more = None
    if page.next_after:
        more = "/console/?" + urlencode(
            {k: v for k, v in {"q": search}.items() if v} | {"after": page.next_after}
        )
    return render(
        request,
        services,
        "picker.html",
        {"page": page, "q": search or "", "more": more, "after": query.after},
        session=session,
    )


# ---------------------------------------------------------------- one app


def app_page(summary: str, query: type[msgspec.Struct] | None = None) -> Callable[[View], Any]:
    def wrap(view: View) -> Any:
        async def endpoint(request: Request) -> Response:
            ctx, answer = await _app_context(request)
            if ctx is None:
                assert answer is not None
                return answer
            return await view(ctx)

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        return operation(_page_op(summary, query))(endpoint)

    return wrap


def app_action(
    summary: str, form: type[msgspec.Struct] = ActionForm
) -> Callable[[Callable[[AppContext, Any], Awaitable[Response]]], Any]:
    def wrap(view: Callable[[AppContext, Any], Awaitable[Response]]) -> Any:
        async def endpoint(request: Request) -> Response:
            ctx, answer = await _app_context(request, post=True)
            if ctx is None:
                assert answer is not None
                return answer
            data = await _form(request, ctx, form)
            if data is None:
                return _csrf_refused(ctx)
            if not ctx.can_write:
                # No button is shown to a viewer; the API would refuse anyway.
                return ctx.page(
                    "message.html",
                    {"title": "Not allowed", "message": "Your grant for this app is read-only."},
                    status=403,
                )
            return await view(ctx, data)

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        return operation(_post_op(summary, form))(endpoint)

    return wrap


@app_page("Admin console: one app")
async def overview(ctx: AppContext) -> Response:
    async with ctx.services.pool.acquire() as conn:
        await grants.remember(conn, ctx.session.operator_sub, ctx.grant.app_id)
    return ctx.page("overview.html", {"nav": "overview", "scopes": sorted(ctx.api.scopes)})


@app_page("Admin console: an app's users", UsersQuery)
async def users(ctx: AppContext) -> Response:
    query, _ = lenient(dict(ctx.request.query_params), UsersQuery)
    answer = await ctx.api.get(
        "/users", email=query.email, status=query.status, cursor=query.cursor
    )
    if answer.status_code != 200:
        return ctx.refused(answer)
    body = _json(answer)
    more = None
    if body.get("next_cursor"):
        params = {"email": query.email, "status": query.status, "cursor": body["next_cursor"]}
        more = "?" + urlencode({k: v for k, v in params.items() if v})
    return ctx.page(
        "users.html",
        {"nav": "users", "items": body.get("items", []), "email": query.email or "", "more": more},
    )


@app_page("Admin console: one user")
async def user_detail(ctx: AppContext) -> Response:
    user_id = ctx.request.path_params["user_id"]
    answer = await ctx.api.get(f"/users/{quote(user_id, safe='')}")
    if answer.status_code != 200:
        return ctx.refused(answer)
    sessions_answer = await ctx.api.get(f"/users/{quote(user_id, safe='')}/sessions")
    listed = _json(sessions_answer).get("items", []) if sessions_answer.status_code == 200 else []
    notice = ctx.request.query_params.get("done")
    detail = _json(answer)
    return ctx.page(
        "user.html",
        {
            "nav": "users",
            "user": detail.get("user", {}),
            "detail": detail,
            "sessions": listed,
            "notice": notice,
        },
    )


_USER_ACTIONS = {
    "disable": ("/disable", "disabled"),
    "enable": ("/enable", "enabled"),
    "revoke": ("/sessions/revoke", "sessions-revoked"),
    "mfa": ("/mfa/reset", "mfa-reset"),
}


def _user_action(kind: str, summary: str) -> Any:
    suffix, done = _USER_ACTIONS[kind]

    async def act(ctx: AppContext, form: ActionForm) -> Response:
        user_id = ctx.request.path_params["user_id"]
        answer = await ctx.api.post(f"/users/{quote(user_id, safe='')}{suffix}")
        if answer.status_code >= 300:
            return ctx.refused(answer)
        return redirect(f"/console/apps/{ctx.grant.app_id}/users/{quote(user_id)}?done={done}", 303)

    act.__name__ = f"user_{kind}"
    return app_action(summary)(act)


user_disable = _user_action("disable", "Admin console: disable a user")
user_enable = _user_action("enable", "Admin console: enable a user")
user_revoke = _user_action("revoke", "Admin console: revoke all of a user's sessions")
user_mfa_reset = _user_action("mfa", "Admin console: reset a user's second factors")


@app_page("Admin console: an app's organizations", CursorQuery)
async def orgs(ctx: AppContext) -> Response:
    query, _ = lenient(dict(ctx.request.query_params), CursorQuery)
    answer = await ctx.api.get("/orgs", cursor=query.cursor)
    if answer.status_code != 200:
        return ctx.refused(answer)
    body = _json(answer)
    more = f"?cursor={quote(body['next_cursor'])}" if body.get("next_cursor") else None
    return ctx.page("orgs.html", {"nav": "orgs", "items": body.get("items", []), "more": more})


@app_page("Admin console: an app's clients", CursorQuery)
async def clients(ctx: AppContext) -> Response:
    query, _ = lenient(dict(ctx.request.query_params), CursorQuery)
    answer = await ctx.api.get("/clients", cursor=query.cursor)
    if answer.status_code != 200:
        return ctx.refused(answer)
    body = _json(answer)
    more = f"?cursor={quote(body['next_cursor'])}" if body.get("next_cursor") else None
    return ctx.page(
        "clients.html",
        {
            "nav": "clients",
            "items": body.get("items", []),
            "more": more,
            "idempotency_key": secrets.token_urlsafe(16),
        },
    )


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


@app_action("Admin console: create a client (its secret is shown once)", ClientForm)
async def client_create(ctx: AppContext, form: ClientForm) -> Response:
    body: dict[str, Any] = {"name": form.name.strip(), "confidential": form.kind != "public"}
    if _words(form.grant_types):
        body["grant_types"] = _words(form.grant_types)
    if _words(form.redirect_uris):
        body["redirect_uris"] = _words(form.redirect_uris)
    if _words(form.scopes):
        body["scopes"] = _words(form.scopes)
    # The form's own key: a double submit replays the first answer, never makes two.
    key = form.idempotency_key or secrets.token_urlsafe(16)
    answer = await ctx.api.post("/clients", body, headers={"idempotency-key": key})
    if answer.status_code not in (200, 201):
        return ctx.refused(answer)
    # The only time the secret is on a page: this answer is not cached (no-store)
    # and the list and detail pages never show it.
    return ctx.page("client_created.html", {"nav": "clients", "client": _json(answer)})


@app_page("Admin console: an app's signing keys")
async def keys(ctx: AppContext) -> Response:
    answer = await ctx.api.get("/keys")
    if answer.status_code != 200:
        return ctx.refused(answer)
    body = _json(answer)
    return ctx.page("keys.html", {"nav": "keys", "items": body.get("items", [])})


@app_action("Admin console: rotate an app's signing key", KeyRotateForm)
async def keys_rotate(ctx: AppContext, form: KeyRotateForm) -> Response:
    body = {"force": bool(form.force), "emergency": bool(form.emergency)}
    answer = await ctx.api.post("/keys/rotate", body)
    if answer.status_code >= 300:
        return ctx.refused(answer)
    return redirect(f"/console/apps/{ctx.grant.app_id}/keys", 303)


def _preview(color: str | None, logo: str | None) -> dict[str, Any]:
    shown = valid_color(color) or DEFAULT_COLOR
    return {
        "color": shown,
        "text_color": _text_on(shown),
        "logo_url": valid_logo_url(logo),
    }


@app_page("Admin console: an app's settings, with a branding preview", SettingsQuery)
async def settings_page(ctx: AppContext) -> Response:
    query, _ = lenient(dict(ctx.request.query_params), SettingsQuery)
    answer = await ctx.api.get("/settings")
    if answer.status_code != 200:
        return ctx.refused(answer)
    current = _json(answer)
    values = current.get("settings", current) if isinstance(current, dict) else {}
    color = query.preview_color or values.get("primary_color")
    logo = query.preview_logo_url or values.get("logo_url")
    preview = _preview(color, logo)
    css = urlencode({"color": preview["color"][1:], "text": preview["text_color"][1:]})
    return ctx.page(
        "settings.html",
        {
            "nav": "settings",
            "values": values,
            "etag": answer.headers.get("etag", ""),
            "preview": preview,
            "previewing": bool(query.preview_color or query.preview_logo_url),
            "preview_css": f"/console/assets/preview.css?{css}",
            "notice": ctx.request.query_params.get("done"),
        },
    )


@app_action("Admin console: save an app's branding settings", SettingsForm)
async def settings_save(ctx: AppContext, form: SettingsForm) -> Response:
    color = valid_color(form.primary_color) if form.primary_color else None
    if form.primary_color and color is None:
        return ctx.page(
            "message.html",
            {"title": "Refused", "message": "The colour must be #rrggbb.", "code": "validation"},
            status=400,
        )
    logo = form.logo_url.strip()
    values = {"primary_color": color, "logo_url": logo or None}
    # The API validates the values (the one policy parser) and checks the ETag.
    patch: dict[str, Any] = {
        "set": {k: v for k, v in values.items() if v is not None},
        "unset": [k for k, v in values.items() if v is None],
    }
    answer = await ctx.api.call(
        "PATCH", "/settings", json=patch, headers={"if-match": form.etag or '""'}
    )
    if answer.status_code >= 300:
        return ctx.refused(answer)
    # 202: the change is queued for the operator-role runner (it applies shortly).
    done = "queued" if answer.status_code == 202 else "saved"
    return redirect(f"/console/apps/{ctx.grant.app_id}/settings?done={done}", 303)


@operation(
    Operation(
        "Admin console: the branding preview's colours",
        query=PreviewCssQuery,
        responses={200: str},
        media_type="text/css",
        tags=TAGS,
    )
)
async def preview_css(request: Request) -> Response:
    query, _ = lenient(dict(request.query_params), PreviewCssQuery)
    color, text = "#" + (query.color or ""), "#" + (query.text or "")
    shown = valid_color(color) or DEFAULT_COLOR
    text_color = valid_color(text) or _text_on(shown)
    return Response(
        preview_stylesheet(shown, text_color),
        media_type="text/css",
        headers={"cache-control": "public, max-age=3600", "x-content-type-options": "nosniff"},
    )


@app_page("Admin console: an app's audit log, with filters", AuditQuery)
async def audit(ctx: AppContext) -> Response:
    query, _ = lenient(dict(ctx.request.query_params), AuditQuery)
    filters = {
        "event": query.event,
        "actor": query.actor,
        "target": query.target,
        "outcome": query.outcome,
        "from": query.from_,
        "to": query.to,
    }
    sent = {**filters, "from": _instant(query.from_), "to": _instant(query.to)}
    answer = await ctx.api.get("/audit", **sent, cursor=query.cursor)
    if answer.status_code in (404, 405) and _json(answer).get("code") in (None, "not_found"):
        # The audit routes (audit-chain) are not in this build yet.
        return ctx.page(
            "audit.html", {"nav": "audit", "items": [], "filters": filters, "unavailable": True}
        )
    if answer.status_code != 200:
        return ctx.refused(answer)
    body = _json(answer)
    more = None
    if body.get("next_cursor"):
        more = "?" + urlencode(
            {k: v for k, v in filters.items() if v} | {"cursor": body["next_cursor"]}
        )
    rows = [{k: item.get(k) for k in _AUDIT_COLUMNS} for item in body.get("items", [])]
    return ctx.page("audit.html", {"nav": "audit", "items": rows, "filters": filters, "more": more})


_AUDIT_COLUMNS = (
    "occurred_at",
    "event",
    "outcome",
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "details",
)


def _instant(value: str | None) -> str | None:
    """A filter's time as the API wants it (ISO 8601 with an offset); a browser's
    ``datetime-local`` value has none and is read as UTC. Unparseable: passed on,
    so the API's 422 names the field."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def routes() -> list[BaseRoute]:
    app = "/apps/{app_id}"
    user = app + "/users/{user_id}"
    return [
        Route("/console", console_root, methods=["GET"]),
        Mount(
            "/console",
            # A stray trailing slash is a 404 here too, never a redirect built
            # from the Host header (see asgi.py).
            app=routing.Router(
                redirect_slashes=False,
                routes=[
                    Route("/", picker, methods=["GET"]),
                    Route("/login", login, methods=["GET"]),
                    Route("/callback", callback, methods=["GET"]),
                    Route("/logout", logout, methods=["POST"]),
                    Route("/signed-out", signed_out, methods=["GET"]),
                    Route("/assets/console.css", style, methods=["GET"]),
                    Route(app, overview, methods=["GET"]),
                    Route(app + "/users", users, methods=["GET"]),
                    Route(user, user_detail, methods=["GET"]),
                    Route(user + "/disable", user_disable, methods=["POST"]),
                    Route(user + "/enable", user_enable, methods=["POST"]),
                    Route(user + "/sessions/revoke", user_revoke, methods=["POST"]),
                    Route(user + "/mfa/reset", user_mfa_reset, methods=["POST"]),
                    Route(app + "/orgs", orgs, methods=["GET"]),
                    Route(app + "/clients", clients, methods=["GET"]),
                    Route(app + "/clients", client_create, methods=["POST"]),
                    Route(app + "/keys", keys, methods=["GET"]),
                    Route(app + "/keys/rotate", keys_rotate, methods=["POST"]),
                    Route(app + "/settings", settings_page, methods=["GET"]),
                    Route(app + "/settings", settings_save, methods=["POST"]),
                    Route("/assets/preview.css", preview_css, methods=["GET"]),
                    Route(app + "/audit", audit, methods=["GET"]),
                ],
            ),
        ),
    ]
