"""A throwaway oneauth for your tests (issue 18): ``pytest -p oneauth.testing``, or
:func:`start_oneauth` as a plain context manager.

::

    from oneauth.testing import start_oneauth

    with start_oneauth() as oneauth:
        shop = oneauth.app("shop")
        ada = shop.create_user(roles=["billing"], orgs={"acme": ["admin"]})
        tokens = ada.sign_in(org="acme")  # the hosted login page, code + PKCE
        shop.issuer, shop.audience, tokens.access_token

As a pytest plugin it adds the fixtures ``oneauth`` (the service, one per
session), ``oneauth_app`` (an app, one per session), ``oneauth_client`` (a
confidential web client of it), ``oneauth_public_client`` (a PKCE public client)
and ``oneauth_user`` (a user factory: ``oneauth_user(roles=[...], orgs={...})``).
Postgres comes from TEST_DATABASE_URL, a Docker engine, or local binaries, as
for ``make test`` (:mod:`oneauth.testing.postgres`).
"""

from __future__ import annotations

import importlib.util

from oneauth.testing.browser import SignInFailed, sign_in_through_pages
from oneauth.testing.postgres import NoPostgres
from oneauth.testing.server import (
    CALLBACK,
    Client,
    Oneauth,
    OneauthApp,
    OneauthError,
    Org,
    Tokens,
    User,
    new_password,
    serve_asgi,
    start_oneauth,
)

__all__ = [
    "CALLBACK",
    "Client",
    "NoPostgres",
    "Oneauth",
    "OneauthApp",
    "OneauthError",
    "Org",
    "SignInFailed",
    "Tokens",
    "User",
    "new_password",
    "serve_asgi",
    "sign_in_through_pages",
    "start_oneauth",
]

# The pytest plugin's hooks and fixtures, when pytest is there to load them (a
# plain context-manager user may have no pytest).
if importlib.util.find_spec("pytest") is not None:
    from oneauth.testing.plugin import (  # noqa: F401
        oneauth,
        oneauth_app,
        oneauth_client,
        oneauth_public_client,
        oneauth_user,
        pytest_addoption,
    )
