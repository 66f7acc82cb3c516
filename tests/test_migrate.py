"""``migrate`` across many app schemas: applies, is idempotent, isolates failures."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ScratchDatabase, new_app_id
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops, templates
from oneauth.settings import Settings


@pytest.fixture(scope="module")
def fleet(make_database: Callable[[str], ScratchDatabase]) -> tuple[str, list[str]]:
    """A database of its own with 50 apps, so extra templates don't touch other tests."""
    db = make_database("migrate")
    migrate_all(db.dsn)
    settings = Settings(env="test", database_url=db.dsn)
    app_ids = [new_app_id("m") for _ in range(50)]
    with ops.connect(db.dsn) as conn:
        for app_id in app_ids:
            lifecycle.provision(conn, settings, app_id, "Fleet")
    return db.dsn, app_ids


def _sql_with(tmp_path: Path, name: str, body: str) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(templates.sql_root(), root)
    version = templates.latest_version("app") + 1
    (root / "app" / f"{version:04d}_{name}.sql").write_text(body)
    return root


def test_migrate_applies_new_template_to_all_then_is_idempotent(
    fleet: tuple[str, list[str]], tmp_path: Path
) -> None:
    dsn, app_ids = fleet
    root = _sql_with(tmp_path, "probe", "CREATE TABLE migration_probe (id uuid PRIMARY KEY);\n")
    seen: list[str] = []
    summary = migrate_all(
        dsn,
        parallelism=4,
        sql_root=root,
        progress=lambda n, total, o: seen.append(f"[{n}/{total} {o.app_id}]"),
    )
    assert not summary.failed
    assert {o.app_id for o in summary.changed} == set(app_ids)
    assert len(seen) == len(app_ids)
    assert seen[-1].startswith(f"[{len(app_ids)}/{len(app_ids)} ")
    with ops.connect(dsn) as conn:
        versions = {a.schema_version for a in lifecycle.list_apps(conn)}
        assert versions == {templates.latest_version("app") + 1}
        for app_id in app_ids[:3]:
            record = lifecycle.get(conn, app_id)
            assert record is not None
            with conn.transaction(), ops.app_context(conn, record.names):
                row = conn.execute("SELECT to_regclass('migration_probe') IS NOT NULL").fetchone()
            assert row == (True,)
    again = migrate_all(dsn, parallelism=4, sql_root=root)
    assert not again.failed
    assert not again.changed


def test_one_failing_schema_does_not_stop_the_others(
    fleet: tuple[str, list[str]], tmp_path: Path
) -> None:
    dsn, app_ids = fleet
    victim = app_ids[7]
    with ops.connect(dsn) as conn:
        record = lifecycle.get(conn, victim)
        assert record is not None
        with conn.transaction(), ops.app_context(conn, record.names):
            conn.execute("CREATE TABLE probe_devices (id int)")  # collides with the new template
    root = _sql_with(tmp_path, "probe", "CREATE TABLE migration_probe (id uuid PRIMARY KEY);\n")
    version = templates.latest_version("app") + 2
    (root / "app" / f"{version:04d}_devices.sql").write_text(
        "CREATE TABLE probe_devices (id uuid);\n"
    )
    summary = migrate_all(dsn, parallelism=4, sql_root=root)
    assert [o.app_id for o in summary.failed] == [victim]
    assert f"{version:04d}_devices.sql failed" in (summary.failed[0].error or "")
    assert len(summary.changed) == len(app_ids) - 1
    # The failed schema kept its previous state, the others moved on; re-running
    # after the fix resumes only the failed one.
    with ops.connect(dsn) as conn:
        record = lifecycle.get(conn, victim)
        assert record is not None
        with conn.transaction(), ops.app_context(conn, record.names):
            conn.execute("DROP TABLE probe_devices")
    resumed = migrate_all(dsn, parallelism=4, sql_root=root)
    assert not resumed.failed
    assert [o.app_id for o in resumed.changed] == [victim]


def test_a_modified_applied_file_is_refused(fleet: tuple[str, list[str]], tmp_path: Path) -> None:
    dsn, _ = fleet
    root = tmp_path / "sql"
    shutil.copytree(templates.sql_root(), root)
    users = root / "app" / "0001_users.sql"
    users.write_text(users.read_text() + "\n-- edited after the fact\n")
    summary = migrate_all(dsn, parallelism=4, sql_root=root)
    assert summary.failed
    assert all(
        "0001_users.sql was changed after it was applied" in (o.error or "") for o in summary.failed
    )
    assert not summary.changed


def test_a_modified_control_file_stops_the_run(
    fleet: tuple[str, list[str]], tmp_path: Path
) -> None:
    dsn, _ = fleet
    root = tmp_path / "sql"
    shutil.copytree(templates.sql_root(), root)
    registry = root / "control" / "0001_registry.sql"
    registry.write_text(registry.read_text() + "\n-- edited\n")
    with pytest.raises(ops.MigrationError, match="changed after it was applied"):
        migrate_all(dsn, sql_root=root)
