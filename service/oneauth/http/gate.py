"""The app gate: every route under ``/apps/{app_id}`` passes through it.

It looks the app_id from the URL up in the registry before any handler runs and
answers 404 for unknown, suspended and deleted apps alike (fail closed, B3), and
503 ``app_unavailable`` for an app whose schema is behind this release.
Handlers read the verified record with ``current_app(request)``.
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from oneauth.apps.models import AppRecord
from oneauth.errors import AppNotFound, AppUnavailable
from oneauth.http.problems import problem_response

SCOPE_KEY = "oneauth.app"


class AppGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app_id = str(scope.get("path_params", {}).get("app_id", ""))
        registry = scope["app"].state.services.registry
        try:
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
