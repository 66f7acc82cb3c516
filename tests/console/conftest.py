"""Fixtures of the console tests: the platform app, and a cookie-keeping client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from oneauth.db import ops
from oneauth.platform import bootstrap
from oneauth.platform.bootstrap import InitResult
from oneauth.settings import Settings
from platformkit import runners  # noqa: F401 (the operator-role runners, a fixture)


@pytest.fixture(scope="session")
def platform_init(settings: Settings) -> InitResult:
    """`oneauth platform init` once for the session's database."""
    with ops.connect(settings.operator_url) as conn:
        return bootstrap.init(conn, settings)


@pytest.fixture
async def browser(
    platform_init: InitResult, service: Starlette
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client that does not follow redirects."""
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
