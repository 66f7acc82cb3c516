"""An app's settings in its admin API (issue 15).

    GET  /settings   admin:settings:read: the stored settings and every effective value,
                     ETag: "<sha256 of the canonical stored settings>"

The settings live in the registry (``oneauth.apps.settings``), which the serving role
may read and never write (D1): a change is the platform's job runner's
(``oneauth platform worker``, operator role), like every registry write.
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from oneauth.admin import etag
from oneauth.admin.app_api._rest import NO_STORE, PREFIX
from oneauth.admin.guard import AdminCaller, admin_operation
from oneauth.admin.models_rest import AdminSettings
from oneauth.apps import policy
from oneauth.http.contract import Operation, json_response
from oneauth.services import Services


@admin_operation(
    Operation(
        "The app's settings: what is set, and every effective value; ETag for If-Match",
        responses={200: AdminSettings},
    ),
    scope="admin:settings:read",
)
async def show_settings(
    request: Request, caller: AdminCaller, conn: asyncpg.Connection
) -> Response:
    # Read fresh, not from the process cache: the ETag must name what is stored now.
    registry = Services.of(request).registry
    registry.invalidate(caller.app.app_id)
    app = await registry.get(caller.app.app_id) or caller.app
    stored = dict(app.settings)
    try:
        effective = policy.effective(stored)
    except policy.PolicyError:  # edited by hand: the service runs on defaults
        effective = policy.effective({})
    return json_response(
        AdminSettings(settings=stored, effective=effective),
        headers={**NO_STORE, "etag": etag.etag_of(stored)},
    )


def routes() -> list[BaseRoute]:
    return [Route(f"{PREFIX}/settings", show_settings, methods=["GET"])]
