"""Every route that makes an app an OpenID Provider beyond the token endpoints:
authorization endpoint with the hosted login and consent pages, UserInfo,
RP-initiated logout, and the consent-management API."""

from __future__ import annotations

from starlette.routing import BaseRoute

from oneauth.api import consents, sessions
from oneauth.oauth import logout, userinfo
from oneauth.web import account, pages, registration


def routes() -> list[BaseRoute]:
    return [
        *pages.routes(),
        *registration.routes(),
        *account.routes(),
        *userinfo.routes(),
        *logout.routes(),
        *consents.routes(),
        *sessions.routes(),
    ]
