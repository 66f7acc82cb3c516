"""Synchronous database operations for the CLI (psycopg): migrations and app context.

Every schema keeps its own ledger (``schema_migrations``) with one row and one
SHA-256 per applied template. A template changed after it was applied stops the
run for that schema with a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from oneauth.db import roles, templates
from oneauth.db.naming import CONTROL_SCHEMA, AppNames, quote_ident

# Namespace of our advisory locks: pg_advisory_xact_lock(LOCK_NAMESPACE, hashtext(key)).
LOCK_NAMESPACE = 0x0A_17_00_01

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A schema could not be migrated; the message names the schema and file."""


@dataclass
class MigrationResult:
    schema: str
    applied: list[str] = field(default_factory=list)
    version: int = 0


def connect(dsn: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection: every operation opens its own explicit transaction."""
    return psycopg.connect(dsn, autocommit=True, application_name="oneauth-cli")


def advisory_lock(conn: psycopg.Connection[tuple[Any, ...]], key: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_NAMESPACE, key))


@contextmanager
def app_context(conn: psycopg.Connection[tuple[Any, ...]], names: AppNames) -> Iterator[None]:
    """Become the app's role with its schema on the search_path, transaction-locally.

    Must run inside a transaction; the settings end with it at the latest.
    """
    conn.execute(
        "SELECT set_config('role', %s, true), set_config('search_path', %s, true),"
        " set_config('oneauth.app_id', %s, true)",
        (names.role, quote_ident(names.schema), names.app_id),
    )
    try:
        yield
    finally:
        if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.execute(
                "SELECT set_config('role', 'none', true), set_config('search_path', %s, true)",
                (quote_ident(CONTROL_SCHEMA),),
            )


def apply_templates(
    conn: psycopg.Connection[tuple[Any, ...]],
    kind: templates.Kind,
    schema: str,
    root: Path | None = None,
    upto: int | None = None,
) -> MigrationResult:
    """Apply pending templates to the schema on the current search_path.

    The caller holds a transaction, the schema's advisory lock and the right
    role/search_path. Verifies checksums of every applied file first. ``upto``
    stops after that version (an import builds an archive's schema version
    first, loads its rows, then migrates the rest).
    """
    result = MigrationResult(schema=schema)
    conn.execute(LEDGER_DDL)
    applied = {
        int(row[0]): (str(row[1]), str(row[2]))
        for row in conn.execute("SELECT version, name, checksum FROM schema_migrations")
    }
    wanted = templates.load(kind, root)
    if upto is not None:
        wanted = tuple(t for t in wanted if t.version <= upto)
    for template in wanted:
        seen = applied.get(template.version)
        if seen is None:
            continue
        if seen[1] != template.checksum or seen[0] != template.name:
            raise MigrationError(
                f"{schema}: {template.filename} was changed after it was applied "
                f"(recorded {seen[0]} sha256={seen[1][:12]}…, "
                f"file sha256={template.checksum[:12]}…); "
                "applied migrations are immutable: add a new numbered file instead"
            )
    unknown = sorted(set(applied) - {t.version for t in wanted})
    if unknown:
        raise MigrationError(
            f"{schema}: the ledger has versions {unknown} that this release does not know; "
            "refusing to run an older release against a newer schema"
        )
    for template in wanted:
        if template.version in applied:
            continue
        try:
            conn.execute(template.sql.encode())
        except psycopg.Error as exc:
            raise MigrationError(f"{schema}: {template.filename} failed: {exc}") from exc
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
            (template.version, template.name, template.checksum),
        )
        result.applied.append(template.filename)
    result.version = len(wanted)
    return result


def migrate_control(
    conn: psycopg.Connection[tuple[Any, ...]], root: Path | None = None
) -> MigrationResult:
    """Create or upgrade the control schema ``oneauth`` in one transaction."""
    with conn.transaction():
        advisory_lock(conn, CONTROL_SCHEMA)
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(CONTROL_SCHEMA))
        )
        conn.execute("SELECT set_config('search_path', %s, true)", (quote_ident(CONTROL_SCHEMA),))
        result = apply_templates(conn, "control", CONTROL_SCHEMA, root)
        # A table added by this release gets its service privileges now (D1).
        roles.grant_service_privileges(conn)
        return result


def control_is_current(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
    row = conn.execute("SELECT to_regclass('oneauth.schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return False
    count = conn.execute("SELECT count(*) FROM oneauth.schema_migrations").fetchone()
    return bool(count and count[0] == templates.latest_version("control"))
