"""The app gate: every route under ``/apps/{app_id}`` passes through it.

It looks the app_id from the URL up in the registry before any handler runs and
answers 404 for unknown, suspended and deleted apps alike (fail closed, B3), and
503 ``app_unavailable`` for an app whose schema is behind this release.
Handlers read the verified record with ``current_app(request)``.

The control-plane app (``platform``) is served by a second gate pinned to its
id at ``/platform``; the ``/apps/{app_id}`` gate refuses every reserved id
(``/apps/platform/...`` is 404), so the control plane has one issuer only.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from oneauth.apps.models import AppRecord
from oneauth.db.naming import is_reserved_app_id
from oneauth.errors import AppNotFound, AppUnavailable
from oneauth.http.problems import problem_response

SCOPE_KEY = "oneauth.app"


class AppGate:
    """``pinned``: serve that one app (the control plane's mount), whatever the path."""

    def __init__(self, app: ASGIApp, *, pinned: str | None = None) -> None:
        self.app = app
        self.pinned = pinned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.pinned is not None:
            app_id = self.pinned
            # Handlers that read the id from the path see the pinned one.
            scope["path_params"] = {**scope.get("path_params", {}), "app_id": app_id}
        else:
            app_id = str(scope.get("path_params", {}).get("app_id", ""))
        registry = scope["app"].state.services.registry
        try:
            if self.pinned is None and is_reserved_app_id(app_id):
                raise AppNotFound(f"no active app {app_id!r}")
            record = await registry.require_active(app_id)
        except (AppNotFound, AppUnavailable) as exc:
            request_id = scope.get("state", {}).get("request_id")
            response = problem_response(
                exc.status, exc.code, exc.title, exc.detail, request_id, exc.headers
            )
            await response(scope, receive, send)
            return
        scope[SCOPE_KEY] = record
        structlog.contextvars.bind_contextvars(app_id=record.app_id)
        await self.app(scope, receive, send)


def current_app(request: Request) -> AppRecord:
    record = request.scope.get(SCOPE_KEY)
    if not isinstance(record, AppRecord):
        raise AppNotFound()
    return record
