"""Fixtures of the OIDC tests: apps with a user and a registered relying party."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from starlette.applications import Starlette

from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.settings import Settings

from ._rp import RelyingParty
from ._support import LiveServer, register, signup


@dataclass
class Provider:
    """An app with one user and one third-party public client."""

    app: AppRecord
    client_id: str
    email: str
    sub: str

    @property
    def app_id(self) -> str:
        return self.app.app_id


@pytest.fixture
async def browser(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client that does not follow redirects (as the tests inspect them)."""
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def make_provider(
    provision: Callable[..., AppRecord], settings: Settings, client: httpx.AsyncClient
) -> Callable[..., Awaitable[Provider]]:
    async def make(email: str = "ada@example.com", **client_kwargs: object) -> Provider:
        app = provision()
        client_id, _ = register(settings, app, **client_kwargs)  # type: ignore[arg-type]
        sub = await signup(client, app.app_id, email)
        return Provider(app, client_id, email, sub)

    return make


@pytest.fixture(scope="session")
def live_op(settings: Settings) -> Iterator[LiveServer]:
    """The real service under uvicorn on 127.0.0.1:<ephemeral>, ONEAUTH_PUBLIC_URL = that URL."""

    def make(base_url: str) -> Starlette:
        return create_app(replace(settings, public_url=base_url), configure_logging=False)

    server = LiveServer(make).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def relying_party() -> Iterator[tuple[RelyingParty, LiveServer]]:
    """A Starlette + authlib relying party on http://localhost:<ephemeral>: another
    site than the provider (127.0.0.1), as a real deployment would be."""
    rp = RelyingParty()
    server = LiveServer(rp.asgi, host="localhost").start()
    yield rp, server
    server.stop()
