"""Helpers of the tests under tests/platform (that directory has no conftest or __init__: a
package named `platform` would shadow the standard library's): import the fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from oneauth.db import ops
from oneauth.platform import bootstrap, operators
from oneauth.platform.bootstrap import InitResult
from oneauth.platform.runner import RunnerThread
from oneauth.settings import Settings


@pytest.fixture(scope="session")
def platform_init(settings: Settings) -> InitResult:
    """`oneauth platform init` once for the session's database."""
    with ops.connect(settings.operator_url) as conn:
        return bootstrap.init(conn, settings)


@pytest.fixture(scope="module")
def runners(settings: Settings, platform_init: object) -> Iterator[None]:
    """Two operator-role runners, as two `oneauth platform worker` processes would be."""
    started = [RunnerThread(settings, poll=1.0, name=f"runner-{n}").start() for n in (1, 2)]
    yield
    for runner in started:
        runner.stop()


def platform_client(settings: Settings, scopes: list[str], name: str = "ops") -> tuple[str, str]:
    with ops.connect(settings.operator_url) as conn:
        client, secret = operators.create_client(conn, name, scopes)
    return client.client_id, secret


async def platform_token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await http.post(
        "/platform/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
