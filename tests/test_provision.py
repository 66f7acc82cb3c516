"""Provisioning and lifecycle: atomic, idempotent, nothing left behind on failure."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from conftest import new_app_id
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import roles, templates
from oneauth.db.naming import AppNames, InvalidAppId, names_for
from oneauth.settings import Settings


def _catalog_counts(conn: lifecycle.Conn) -> tuple[int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'app\\_%'),"
        " (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'oneauth\\_%'),"
        " (SELECT count(*) FROM oneauth.apps)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _names(conn: lifecycle.Conn, app_id: str) -> AppNames:
    """The names provisioning gives app_id in this installation (its role namespace)."""
    return names_for(app_id, roles.installation(conn)[0])


def _exists(conn: lifecycle.Conn, app_id: str) -> tuple[bool, bool, bool]:
    names = _names(conn, app_id)
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
        " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s),"
        " EXISTS (SELECT 1 FROM oneauth.apps WHERE app_id = %s)",
        (names.schema, names.role, app_id),
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1]), bool(row[2])


@pytest.mark.parametrize(
    "app_id", ["../x", "a;drop schema oneauth", "APP", "аpp", "a" * 200, "app_x", "ab"]
)
def test_hostile_ids_create_nothing(
    sync_conn: lifecycle.Conn, settings: Settings, app_id: str
) -> None:
    before = _catalog_counts(sync_conn)
    with pytest.raises(InvalidAppId):
        lifecycle.provision(sync_conn, settings, app_id, "Hostile")
    assert _catalog_counts(sync_conn) == before


def test_provision_creates_role_schema_and_tables(
    sync_conn: lifecycle.Conn, settings: Settings
) -> None:
    app_id = new_app_id()
    result = lifecycle.provision(sync_conn, settings, app_id, "Shop")
    assert result.created
    assert result.app.schema_version == templates.latest_version("app")
    assert _exists(sync_conn, app_id) == (True, True, True)
    names = _names(sync_conn, app_id)
    row = sync_conn.execute(
        "SELECT r.rolcanlogin, r.rolinherit, pg_get_userbyid(n.nspowner) "
        "FROM pg_roles r, pg_namespace n WHERE r.rolname = %s AND n.nspname = %s",
        (names.role, names.schema),
    ).fetchone()
    assert row == (False, False, names.role)
    tables = {
        r[0]
        for r in sync_conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (names.schema,)
        )
    }
    assert {"users", "audit_log", "schema_migrations"} <= tables


def test_provision_twice_is_a_no_op_and_conflicts_are_errors(
    sync_conn: lifecycle.Conn, settings: Settings
) -> None:
    app_id = new_app_id()
    first = lifecycle.provision(sync_conn, settings, app_id, "Shop")
    again = lifecycle.provision(sync_conn, settings, app_id, "Shop")
    assert not again.created
    assert again.app == first.app
    with pytest.raises(lifecycle.AppConflict, match="exists with name"):
        lifecycle.provision(sync_conn, settings, app_id, "Another name")


def test_failed_provisioning_leaves_nothing_behind(
    sync_conn: lifecycle.Conn, settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(templates.sql_root(), root)
    (root / "app" / f"{templates.latest_version('app') + 1:04d}_broken.sql").write_text(
        "CREATE TABLE fine (id int);\nCREATE TABLE broken (id int REFERENCES nowhere(id));\n"
    )
    app_id = new_app_id()
    before = _catalog_counts(sync_conn)
    with pytest.raises(Exception, match="broken"):
        lifecycle.provision(sync_conn, settings, app_id, "Broken", sql_root=root)
    assert _exists(sync_conn, app_id) == (False, False, False)
    assert _catalog_counts(sync_conn) == before


def test_failing_hook_rolls_back_everything(sync_conn: lifecycle.Conn, settings: Settings) -> None:
    def hook(conn: lifecycle.Conn, app: AppRecord, s: Settings) -> dict[str, object]:
        conn.execute("INSERT INTO users (email, email_normalized) VALUES ('a', 'a')")
        raise RuntimeError("seed failed")

    app_id = new_app_id()
    with pytest.raises(RuntimeError, match="seed failed"):
        lifecycle.provision(sync_conn, settings, app_id, "Hooked", hooks=[hook])
    assert _exists(sync_conn, app_id) == (False, False, False)


def test_delete_drops_schema_and_role_and_keeps_a_tombstone(
    sync_conn: lifecycle.Conn, settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    keep = provision()
    app = provision()
    deleted = lifecycle.delete(sync_conn, app.app_id)
    assert deleted.status == "deleted"
    assert _exists(sync_conn, app.app_id) == (False, False, True)
    assert _exists(sync_conn, keep.app_id) == (True, True, True)
    with pytest.raises(lifecycle.AppConflict, match="never reused"):
        lifecycle.provision(sync_conn, settings, app.app_id, "Test App")
    with pytest.raises(lifecycle.AppConflict):
        lifecycle.set_status(sync_conn, app.app_id, "active")
    assert app.app_id not in {a.app_id for a in lifecycle.list_apps(sync_conn)}
    assert app.app_id in {a.app_id for a in lifecycle.list_apps(sync_conn, include_deleted=True)}


def test_suspend_and_resume(sync_conn: lifecycle.Conn, provision: Callable[..., AppRecord]) -> None:
    app = provision()
    assert lifecycle.set_status(sync_conn, app.app_id, "suspended").status == "suspended"
    assert lifecycle.set_status(sync_conn, app.app_id, "active").status == "active"
    with pytest.raises(lifecycle.AppMissing):
        lifecycle.set_status(sync_conn, "no-such-app", "suspended")


def test_audit_log_is_append_only(
    sync_conn: lifecycle.Conn, provision: Callable[..., AppRecord]
) -> None:
    from oneauth.db import ops

    app = provision()
    with sync_conn.transaction(), ops.app_context(sync_conn, app.names):
        sync_conn.execute("INSERT INTO audit_log (event, outcome) VALUES ('test.event', 'success')")
    for statement in (
        "UPDATE audit_log SET event = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            sync_conn.transaction(),
            ops.app_context(sync_conn, app.names),
        ):
            sync_conn.execute(statement)
