from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from oneauth.verifier.testing import TokenMinter

from ._keyserver import KeyServer
from ._support import AUDIENCE, LiveIssuer

_app_ids = itertools.count(1)

MakeIssuer = Callable[..., LiveIssuer]


@pytest.fixture(scope="session")
def key_server() -> Iterator[KeyServer]:
    server = KeyServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_issuer(key_server: KeyServer) -> MakeIssuer:
    """Create an app on the live key server: ``make_issuer(alg, clock=..., server=...)``."""

    def make(
        alg: str = "ES256",
        *,
        clock: Callable[[], float] = time.time,
        server: KeyServer | None = None,
    ) -> LiveIssuer:
        srv = server or key_server
        app_id = f"app{next(_app_ids)}"
        minter = TokenMinter(srv.issuer(app_id), app_id, AUDIENCE, alg, clock=clock)
        live = LiveIssuer(srv, app_id, minter)
        live.publish()
        return live

    return make


@pytest.fixture
def shop(make_issuer: MakeIssuer) -> LiveIssuer:
    return make_issuer("ES256")


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value
