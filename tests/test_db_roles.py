"""D1 and D2: the service role holds nothing but app roles; installations share a cluster.

The service under test logs in as the service role that ``oneauth db bootstrap``
made; provisioning runs as the operator role. Postgres itself is the judge:
every refusal below is Postgres' ``permission denied``, not a check of ours.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from apiclient import PASSWORD
from conftest import ScratchDatabase
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops, roles, templates
from oneauth.db.bootstrap import bootstrap, service_dsn
from oneauth.db.naming import names_for
from oneauth.db.roles import UnsafeRole
from oneauth.settings import Settings

Conn = psycopg.Connection[tuple[Any, ...]]


def _connect(dsn: str) -> Conn:
    return psycopg.connect(dsn, autocommit=True)


def _predefined_roles(conn: Conn) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pg\\_%' ORDER BY rolname"
        )
    ]


def _memberships(conn: Conn) -> set[str]:
    return {
        str(r[0])
        for r in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
            " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
    }


def test_service_role_cannot_grant_itself_any_predefined_role(settings: Settings) -> None:
    with _connect(settings.database_url) as conn:
        predefined = _predefined_roles(conn)
        # The two the audit used: every app's data (Postgres 14+), and commands on
        # the database host.
        assert "pg_execute_server_program" in predefined
        if conn.info.server_version >= 140000:
            assert "pg_read_all_data" in predefined
        for role in predefined:
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
            if role != "pg_database_owner":  # has no explicit members at all
                assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege), role
        assert not {m for m in _memberships(conn) if m.startswith("pg_")}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM pg_authid")


def test_service_role_cannot_create_roles_databases_or_control_objects(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with _connect(settings.database_url) as conn:
        name = sql.Identifier("oneauth_probe_" + secrets.token_hex(3))
        for statement in (
            sql.SQL("CREATE ROLE {}").format(name),
            sql.SQL("CREATE DATABASE {}").format(name),
            sql.SQL("CREATE SCHEMA {}").format(name),
            sql.SQL("CREATE TABLE oneauth.{} (id int)").format(name),
            sql.SQL("UPDATE oneauth.apps SET status = 'active' WHERE app_id = {}").format(
                sql.Literal(app.app_id)
            ),
            sql.SQL("UPDATE oneauth.installation SET service_role = NULL"),
            sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(app.names.role)),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        # What it needs it has: the registry is readable.
        row = conn.execute("SELECT role_name FROM oneauth.apps WHERE app_id = %s", (app.app_id,))
        assert row.fetchone() == (app.names.role,)


def test_service_role_cannot_read_an_app_schema_outside_the_router(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with _connect(settings.database_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}.users").format(sql.Identifier(app.names.schema))
            )
        # Inside the app's context (what the router does) the same query works.
        with conn.transaction(), ops.app_context(conn, app.names):
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_provisioning_as_the_operator_makes_apps_the_service_enters(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with _connect(settings.database_url) as conn:
        version = conn.info.server_version
        row = conn.execute(
            "SELECT pg_has_role(current_user, %s, 'MEMBER'), pg_has_role(current_user, %s,"
            " 'USAGE'), (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s)",
            (app.names.role, app.names.role, app.names.schema),
        ).fetchone()
        # A member that may SET ROLE but, NOINHERIT, has none of its rights by itself.
        assert row == (True, False, app.names.role)
        if version >= 160000:
            grant = conn.execute(
                "SELECT m.inherit_option, m.set_option FROM pg_auth_members m"
                " WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = %s)"
                " AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
                (app.names.role,),
            ).fetchone()
            assert grant == (False, True)
        roles.check_service_role(conn)  # what serve checks passes


@pytest.fixture(scope="module")
def spare(make_database: Callable[[str], ScratchDatabase]) -> ScratchDatabase:
    db = make_database("spare")
    migrate_all(db.dsn)
    return db


@pytest.mark.parametrize(
    ("grant", "undo", "named"),
    [
        ("ALTER ROLE {svc} CREATEROLE", "ALTER ROLE {svc} NOCREATEROLE", "CREATEROLE"),
        ("ALTER ROLE {svc} INHERIT", "ALTER ROLE {svc} NOINHERIT", "INHERIT"),
        ("ALTER ROLE {svc} CREATEDB", "ALTER ROLE {svc} NOCREATEDB", "CREATEDB"),
        ("ALTER ROLE {svc} BYPASSRLS", "ALTER ROLE {svc} NOBYPASSRLS", "BYPASSRLS"),
        ("GRANT pg_read_all_data TO {svc}", "REVOKE pg_read_all_data FROM {svc}", "pg_read_all"),
        ("GRANT {op} TO {svc}", "REVOKE {op} FROM {svc}", "membership in"),
        ("ALTER SCHEMA oneauth OWNER TO {svc}", "ALTER SCHEMA oneauth OWNER TO {op}", "control"),
    ],
)
async def test_serve_refuses_a_role_with_more_than_app_roles(
    spare: ScratchDatabase, grant: str, undo: str, named: str
) -> None:
    names = {"svc": spare.service_role, "op": spare.role}
    admin = psycopg.conninfo.make_conninfo(spare.admin_dsn, dbname=spare.database)
    with _connect(admin) as conn:
        conn.execute(grant.format(**names).encode())
        try:
            app = create_app(
                spare.settings(pool_min_size=1, pool_max_size=1), configure_logging=False
            )
            with pytest.raises(UnsafeRole, match=named):
                async with app.router.lifespan_context(app):
                    pass
        finally:
            conn.execute(undo.format(**names).encode())
    app = create_app(spare.settings(pool_min_size=1, pool_max_size=1), configure_logging=False)
    async with app.router.lifespan_context(app):
        pass  # the repaired role starts


def _cli(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ONEAUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env={**clean, "ONEAUTH_ENV": "test", **env},
        check=False,
        timeout=120,
        cwd=cwd,
    )


def test_oneauth_serve_refuses_the_operator_role_in_one_line(settings: Settings) -> None:
    result = _cli({"ONEAUTH_DATABASE_URL": settings.operator_url}, "serve")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the service's database role")
    assert "CREATEROLE" in lines[0]
    assert "ownership of the database" in lines[0]


@pytest.fixture
def cleanup_installation(pg_admin_dsn: str) -> Iterator[Callable[[str, list[str]], None]]:
    made: list[tuple[str, list[str]]] = []
    yield lambda database, role_names: made.append((database, role_names))
    with _connect(pg_admin_dsn) as conn:
        for database, role_names in made:
            app_roles: list[str] = []
            dsn = psycopg.conninfo.make_conninfo(pg_admin_dsn, dbname=database)
            with contextlib.suppress(psycopg.OperationalError), _connect(dsn) as own:
                app_roles = [str(r[0]) for r in own.execute("SELECT role_name FROM oneauth.apps")]
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            for role in [*app_roles, *role_names]:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_db_bootstrap_prints_a_service_and_an_operator_url(
    pg_admin_dsn: str, cleanup_installation: Callable[[str, list[str]], None]
) -> None:
    database = "oneauth_boot_" + secrets.token_hex(3)
    cleanup_installation(database, [database, f"{database}_service"])
    args = ("db", "bootstrap", "--admin-url", pg_admin_dsn, "--database", database)
    first = _cli({}, *args, "--namespace", "boot1")
    assert first.returncode == 0, first.stderr
    lines = dict(
        line.split("=", 1) for line in first.stdout.splitlines() if not line.startswith("#")
    )
    service, operator = lines["ONEAUTH_DATABASE_URL"], lines["ONEAUTH_OPERATOR_DATABASE_URL"]
    assert "role namespace: boot1" in first.stdout
    with _connect(service) as conn:
        roles.check_service_role(conn)
    with _connect(operator) as conn:
        row = conn.execute(
            "SELECT rolcreaterole, rolinherit, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (True, False, False)
        settings = Settings(env="test", database_url=service, operator_database_url=operator)
        app = lifecycle.provision(conn, settings, "shop", "Shop").app
        assert app.names.role == "oneauth_boot1__shop"
    # Idempotent; and the namespace is fixed once an app was provisioned under it.
    again = _cli({}, *args, "--namespace", "boot1")
    assert again.returncode == 0, again.stderr
    moved = _cli({}, *args, "--namespace", "boot2")
    assert moved.returncode == 1
    assert "cannot change" in moved.stderr


async def test_two_installations_on_one_cluster_both_serve_app_shop(
    make_database: Callable[[str], ScratchDatabase],
) -> None:
    """D2: staging and production databases on one cluster, each with its own `shop`."""
    first, second = make_database("insta"), make_database("instb")
    assert first.namespace != second.namespace
    clients: dict[str, str] = {}
    for db in (first, second):
        migrate_all(db.dsn)
        settings = db.settings(pool_min_size=1, pool_max_size=2)
        with ops.connect(db.dsn) as conn:
            result = lifecycle.provision(conn, settings, "shop", "Shop")
        clients[db.database] = str(result.extra["default_client_id"])
        app = create_app(settings, configure_logging=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                shown = await c.get("/apps/shop/v1/app")
                assert shown.status_code == 200, shown.text
                assert shown.json()["default_client_id"] == clients[db.database]
                signup = await c.post(
                    "/apps/shop/v1/signup",
                    json={"email": "same@example.com", "password": PASSWORD},
                )
                # The same address is new in each installation's shop.
                assert signup.status_code == 201, signup.text
    assert clients[first.database] != clients[second.database]
    role_a = names_for("shop", first.namespace).role
    role_b = names_for("shop", second.namespace).role
    assert role_a != role_b
    for db, foreign in ((first, role_b), (second, role_a)):
        with (
            _connect(db.service_dsn) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(foreign)))
        other = second if db is first else first
        # Nor may one installation's service role even connect to the other's database.
        foreign_db = psycopg.conninfo.make_conninfo(db.service_dsn, dbname=other.database)
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            _connect(foreign_db).close()


async def test_a_single_role_installation_upgrades_and_keeps_its_app_names(
    pg_admin_dsn: str, tmp_path: Path, cleanup_installation: Callable[[str, list[str]], None]
) -> None:
    """Before D1/D2: one CREATEROLE login role, app roles named oneauth_app_<id>."""
    suffix = secrets.token_hex(3)
    database = old_role = f"oneauth_old_{suffix}"
    app_id = f"legacy-{suffix}"
    legacy = names_for(app_id)  # namespace '': the names of before
    cleanup_installation(database, [old_role, f"{old_role}_svc", legacy.role])
    with _connect(pg_admin_dsn) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOINHERIT CREATEROLE PASSWORD 'old-pw'").format(
                sql.Identifier(old_role)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(old_role)
            )
        )
    old_templates = tmp_path / "sql"
    shutil.copytree(templates.sql_root(), old_templates)
    for later in sorted((old_templates / "control").glob("*.sql"))[2:]:
        later.unlink()  # the control schema as the release before D1/D2 left it
    old_dsn = service_dsn(pg_admin_dsn, role=old_role, password="old-pw", database=database)
    with ops.connect(old_dsn) as conn:
        ops.migrate_control(conn, old_templates)
        with conn.transaction():  # what provisioning did then
            conn.execute(
                "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name)"
                " VALUES (%s, 'Legacy', %s, %s)",
                (app_id, legacy.schema, legacy.role),
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(sql.Identifier(legacy.role))
            )
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(legacy.role)))
            conn.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(legacy.schema), sql.Identifier(legacy.role)
                )
            )
            with ops.app_context(conn, legacy):
                ops.apply_templates(conn, "app", legacy.schema)
    made = bootstrap(
        pg_admin_dsn,
        database=database,
        operator_role=old_role,
        operator_password="old-pw",
        service_role=f"{old_role}_svc",
        service_password="new-pw",
    )
    settings = Settings(
        env="test",
        database_url=made.service_dsn,
        operator_database_url=made.operator_dsn,
        public_url="http://testserver",
        pool_min_size=1,
        pool_max_size=2,
    )
    summary = migrate_all(made.operator_dsn, settings=settings)
    assert not summary.failed
    with ops.connect(made.operator_dsn) as conn:
        record = lifecycle.get(conn, app_id)
        assert record is not None
        assert record.names == legacy
        fresh = lifecycle.provision(conn, settings, f"fresh-{suffix}", "Fresh").app
        assert fresh.names.role == names_for(fresh.app_id, made.namespace).role
    cleanup_installation(database, [fresh.names.role])
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for served in (app_id, fresh.app_id):
                assert (await c.get(f"/apps/{served}/v1/app")).status_code == 200
