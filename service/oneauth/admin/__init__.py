"""The admin API (issue 15): one app at a time, scoped tokens, audited.

``routes()`` is every app admin route, mounted by :func:`oneauth.asgi.app_routes`
under the app gate (``/apps/{app_id}/admin/v1/...``). Each area is a module of
:mod:`oneauth.admin.app_api` with its own ``routes()``; keep this a plain list,
one import line and one list line per module (parallel branches merge as a union).
"""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    # Imported here, not at the top: oneauth.oauth.clients imports
    # oneauth.admin.scopes, and the route modules import the services.
    from oneauth.admin.app_api import (
        audit,
        clients,
        directory,
        keys,
        providers,
        settings,
        users,
        webhooks,
    )

    return [
        *users.routes(),
        *directory.routes(),
        *clients.routes(),
        *providers.routes(),
        *keys.routes(),
        *settings.routes(),
        *audit.routes(),
        *webhooks.routes(),
    ]
