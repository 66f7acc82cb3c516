"""X4: the rows of an archive are read as COPY blocks of the app's own tables; any other
statement in pg_restore's output is refused, never run."""

from __future__ import annotations

import io
from typing import Any

import pytest

from oneauth.apps import transfer
from oneauth.apps.archive import ArchiveError


def load(script: bytes) -> None:
    conn: Any = None  # nothing here may reach the database
    transfer._load_stream(
        conn,
        io.BytesIO(script),
        "app_shop",
        "app_clone",
        {"users": {"id", "email"}, "schema_migrations": {"version"}},
        {"audit_log_id_seq": "audit_log"},
        frozenset({"audit_log"}),
        {},
        [],
    )


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (b"SET statement_timeout = 0;\nCREATE ROLE evil SUPERUSER;\n", "never has"),
        (b"GRANT ALL ON SCHEMA oneauth TO PUBLIC;\n", "never has"),
        (b"SET x = 1; DROP SCHEMA oneauth CASCADE;\n", "never has"),
        (b"COPY oneauth.apps (app_id) FROM stdin;\nx\n\\.\n", "schema 'oneauth'"),
        (b"COPY app_shop.pg_authid (rolname) FROM stdin;\nx\n\\.\n", "lacks"),
        (b"SELECT pg_catalog.setval('oneauth.jobs_id_seq', 5, true);\n", "unknown sequence"),
        (b"COPY app_shop.schema_migrations (version) FROM stdin;\n1\n", "truncated"),
        (b'COPY app_shop.users (id, "x) FROM stdin;\n', "column list"),
        (b"COPY app_shop.users (id, is_admin) FROM stdin;\n", "lacks: is_admin"),
    ],
)
def test_anything_but_rows_of_the_apps_tables_is_refused(script: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        load(script)


def test_harmless_lines_and_skipped_tables_pass_without_the_database() -> None:
    load(
        b"--\n-- PostgreSQL database dump\n--\n\\restrict abc123\n\n"
        b"SET client_encoding = 'UTF8';\n"
        b"SELECT pg_catalog.set_config('search_path', '', false);\n"
        b"SELECT pg_catalog.setval('app_shop.audit_log_id_seq', 42, true);\n"
        b"\\unrestrict abc123\n"
    )


def test_column_lists_are_parsed_as_identifiers() -> None:
    assert transfer._columns('id, "default", email_normalized') == [
        "id",
        "default",
        "email_normalized",
    ]
    with pytest.raises(ArchiveError):
        transfer._columns("id); DROP TABLE users; --")
