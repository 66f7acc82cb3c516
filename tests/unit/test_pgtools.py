"""Choosing pg_dump/pg_restore by the server's major version; the password stays off argv (X5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oneauth.db import pgtools

DEBIAN = sorted(
    int(p.parent.parent.name)
    for p in Path("/usr/lib/postgresql").glob("*/bin/pg_dump")
    if p.parent.parent.name.isdigit()
)


@pytest.mark.skipif(not DEBIAN, reason="no Debian PostgreSQL client tools here")
def test_the_tool_of_the_servers_major_or_the_next_newer() -> None:
    major = DEBIAN[0]
    found = pgtools.find_tool("pg_dump", major)
    assert found == Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")
    assert pgtools.tool_major(found) == major
    if major > 10:  # an older server: the oldest installed newer major
        assert pgtools.find_tool("pg_restore", major - 1).parent.parent.name == str(major)


def test_too_old_or_missing_tools_are_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(pgtools.PgToolError, match=r"no pg_dump for PostgreSQL 99 or newer"):
        pgtools.find_tool("pg_dump", 99)
    with pytest.raises(pgtools.PgToolError, match="does not exist"):
        pgtools.find_tool("pg_dump", 15, tmp_path)
    if DEBIAN:
        bindir = Path(f"/usr/lib/postgresql/{DEBIAN[0]}/bin")
        with pytest.raises(pgtools.PgToolError, match="older than the server"):
            pgtools.find_tool("pg_dump", DEBIAN[-1] + 1, bindir)


def test_the_password_travels_in_the_environment_only() -> None:
    dsn, env = pgtools.split_dsn(
        "postgresql://op:s3cret%21@db.example:5433/oneauth?sslmode=require"
    )
    assert "s3cret" not in dsn
    assert env["PGPASSWORD"] == "s3cret!"
    assert "dbname=oneauth" in dsn
    assert "port=5433" in dsn
    assert "sslmode=require" in dsn
