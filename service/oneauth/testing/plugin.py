"""The pytest side of :mod:`oneauth.testing` (loaded by ``pytest -p oneauth.testing``).

Fixtures:

- ``oneauth`` (session): the running service, :class:`~oneauth.testing.Oneauth`;
  ``oneauth.app(...)`` provisions more apps.
- ``oneauth_app`` (session): the app named by the ini option ``oneauth_app_id``
  (default ``testapp``), :class:`~oneauth.testing.OneauthApp`: ``issuer``,
  ``audience``, ``create_user``, ``create_client``, ``sign_in``, ``admin``.
- ``oneauth_client`` (session): a confidential, first-party web client
  (authorization_code, refresh_token, client_credentials is NOT among them)
  whose redirect URIs are the ini option ``oneauth_redirect_uris`` (default
  ``http://127.0.0.1/callback``).
- ``oneauth_public_client`` (session): a public PKCE client, same redirect URIs.
- ``oneauth_user`` (function): a factory, ``oneauth_user(email=None, password=None,
  roles=(), orgs=None)`` -> :class:`~oneauth.testing.User` (sign in with
  ``user.sign_in()``).

ini options (``[pytest]`` / ``[tool.pytest.ini_options]``): ``oneauth_app_id``,
``oneauth_redirect_uris`` (one per line). Postgres: see
:mod:`oneauth.testing.postgres`; no Postgres at all stops the session with a
message saying what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oneauth.testing.postgres import NoPostgres
from oneauth.testing.server import CALLBACK, Client, Oneauth, OneauthApp, User, start_oneauth

__all__ = [
    "oneauth",
    "oneauth_app",
    "oneauth_client",
    "oneauth_public_client",
    "oneauth_user",
    "pytest_addoption",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("oneauth_app_id", "app id of the oneauth_app fixture", default="testapp")
    parser.addini(
        "oneauth_redirect_uris",
        "redirect URIs of the oneauth_client and oneauth_public_client fixtures",
        type="linelist",
        default=[CALLBACK],
    )


def _redirect_uris(config: pytest.Config) -> tuple[str, ...]:
    value: Any = config.getini("oneauth_redirect_uris")
    return tuple(value) or (CALLBACK,)


@pytest.fixture(scope="session")
def oneauth() -> Iterator[Oneauth]:
    """A throwaway oneauth service for the session (database removed after)."""
    try:
        with start_oneauth() as server:
            yield server
    except NoPostgres as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def oneauth_app(oneauth: Oneauth, pytestconfig: pytest.Config) -> OneauthApp:
    """The session's app (ini ``oneauth_app_id``, default ``testapp``)."""
    return oneauth.app(str(pytestconfig.getini("oneauth_app_id")))


@pytest.fixture(scope="session")
def oneauth_client(oneauth_app: OneauthApp, pytestconfig: pytest.Config) -> Client:
    """A confidential first-party web client (code flow, refresh)."""
    return oneauth_app.create_client(
        "web client", confidential=True, redirect_uris=_redirect_uris(pytestconfig)
    )


@pytest.fixture(scope="session")
def oneauth_public_client(oneauth_app: OneauthApp, pytestconfig: pytest.Config) -> Client:
    """A public client (PKCE, no secret), as a CLI or single-page app registers."""
    return oneauth_app.create_client("public client", redirect_uris=_redirect_uris(pytestconfig))


@pytest.fixture
def oneauth_user(oneauth_app: OneauthApp) -> Callable[..., User]:
    """A factory of users of ``oneauth_app``: ``oneauth_user(roles=["billing"],
    orgs={"acme": ["admin"]})``; each call a new user (random address and password
    unless given)."""
    return oneauth_app.create_user
