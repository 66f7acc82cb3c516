"""The service role and the operator role, and what each may do (D1, D2).

The **operator** role (the CLI: bootstrap, migrate, provision, delete, keys,
clients) has CREATEROLE and owns the database, the control schema and, through
the app roles it creates, the app schemas. The **service** role (``oneauth
serve``, ``oneauth worker``) has LOGIN NOINHERIT and nothing else: it is a member
of the app roles, so the router may become one per transaction, plus the few
control-schema privileges listed in SERVICE_PRIVILEGES. With CREATEROLE it could
grant itself a predefined role such as ``pg_read_all_data`` (every app's users)
or ``pg_execute_server_program`` (commands on the database host), so ``serve``
refuses such a role (``unsafe_service_role``).

SQL lives here and takes the connection first, like every repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from oneauth.db.naming import CONTROL_SCHEMA, validate_namespace

Conn = psycopg.Connection[tuple[Any, ...]]

# What the running service does with the control schema, and nothing more:
# registry lookups, the readiness check, the mail sweep's record of visits.
# A new control table the service needs is added here (migrate re-grants).
SERVICE_PRIVILEGES: Mapping[str, str] = {
    "apps": "SELECT",
    "schema_migrations": "SELECT",
    "installation": "SELECT",
    "mail_sweep": "SELECT, INSERT, UPDATE, DELETE",
    # The platform API (oneauth.platform): it reads operators' grants and
    # queues jobs; the operator-role runner executes and updates them (the
    # service never creates schemas or roles).
    "console_grants": "SELECT",
    "platform_jobs": "SELECT, INSERT",
    # the admin console's sign-ins and recent apps (issue 15, sql/control/0006)
    "console_sessions": "SELECT, INSERT, UPDATE, DELETE",
    "console_recent_apps": "SELECT, INSERT, UPDATE, DELETE",
    # The audit sealer: signed checkpoints are only ever added (A2).
    "audit_checkpoints": "SELECT, INSERT",
    "audit_sweep": "SELECT, INSERT, UPDATE, DELETE",
    "webhook_sweep": "SELECT, INSERT, UPDATE, DELETE",
    # Per-app data keys, wrapped by the master key (oneauth.apps.dek, K1): read
    # with every registry row; created, rewrapped and destroyed by the CLI only.
    "app_keys": "SELECT",
    # the retention worker's record of visits (oneauth.retention, sql/control/0009)
    "retention_sweep": "SELECT, INSERT, UPDATE, DELETE",
    # the retention cycle's lease (sql/control/0010; no longer written since 0011)
    "retention_leader": "SELECT, INSERT, UPDATE",
    # named leases: the retention cycle, the audit sealer's rounds (sql/control/0011)
    "leases": "SELECT, INSERT, UPDATE",
}


class UnsafeRole(RuntimeError):
    """The configured login role would bypass the per-app privilege boundary."""


def installation(conn: Conn) -> tuple[str, str | None]:
    """(role namespace, service role) of this installation."""
    row = conn.execute("SELECT role_namespace, service_role FROM oneauth.installation").fetchone()
    if row is None:
        raise RuntimeError("oneauth.installation is empty: run `oneauth migrate`")
    return str(row[0]), None if row[1] is None else str(row[1])


def set_installation(conn: Conn, *, service_role: str, namespace: str | None) -> str:
    """Record the service role (and a chosen namespace); return the namespace in force.

    The namespace is part of every app role's name, so it changes only while no
    app was provisioned under the current one.
    """
    with conn.transaction():
        current, _ = installation(conn)
        if namespace is not None and namespace != current:
            validate_namespace(namespace)
            if namespace == "":
                raise ValueError("the role namespace cannot be empty")
            used = conn.execute(
                "SELECT count(*) FROM oneauth.apps WHERE role_namespace = %s", (current,)
            ).fetchone()
            if used and used[0]:
                raise ValueError(
                    f"{used[0]} app(s) were provisioned under role namespace {current!r}; "
                    "it cannot change any more"
                )
            current = namespace
        conn.execute(
            "UPDATE oneauth.installation SET role_namespace = %s, service_role = %s,"
            " updated_at = now()",
            (current, service_role),
        )
    grant_service_privileges(conn)
    return current


def grant_service_privileges(conn: Conn) -> None:
    """Give the service role exactly SERVICE_PRIVILEGES on the control schema (idempotent)."""
    row = conn.execute("SELECT to_regclass('oneauth.installation') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return  # a control schema from before D1, being migrated by a test's templates
    _, service = installation(conn)
    if service is None:
        return
    who = sql.Identifier(service)
    schema = sql.Identifier(CONTROL_SCHEMA)
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, who))
    for table, privileges in SERVICE_PRIVILEGES.items():
        conn.execute(
            sql.SQL("GRANT {} ON {}.{} TO {}").format(
                sql.SQL(privileges), schema, sql.Identifier(table), who
            )
        )


def grant_app_role(conn: Conn, role: str) -> None:
    """Let the operator (the current user) and the service role become an app role.

    The operator sets the role to create the app's tables; the service sets it
    per transaction in the router. Both are NOINHERIT. On Postgres 16+ the grant
    says so itself (INHERIT FALSE, SET TRUE) and the creator holds ADMIN OPTION
    on the roles it created, which is what lets it grant them.
    """
    app = sql.Identifier(role)
    pg16 = conn.info.server_version >= 160000
    options = sql.SQL(" WITH INHERIT FALSE, SET TRUE" if pg16 else "")
    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER{}").format(app, options))
    _, service = installation(conn)
    if service is not None:
        conn.execute(sql.SQL("GRANT {} TO {}{}").format(app, sql.Identifier(service), options))


# Every way a login role could hold more than "become an app role": its own
# attributes, any role it can reach (predefined pg_* roles, login roles such as
# the operator, roles with powerful attributes), ownership of the database or of
# the control schema and its tables.
SERVICE_ROLE_AUDIT_SQL = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolinherit,
       r.rolbypassrls, r.rolreplication,
       ARRAY(SELECT o.rolname::text FROM pg_roles o
             -- the cheap filter first: with 10,000 app roles, pg_has_role runs
             -- only for the few candidates
             WHERE o.oid <> r.oid
               AND (o.rolname LIKE 'pg\\_%' OR o.rolcanlogin OR o.rolsuper
                    OR o.rolcreaterole OR o.rolcreatedb OR o.rolbypassrls
                    OR o.rolreplication)
               AND pg_has_role(r.oid, o.oid, 'MEMBER')
             ORDER BY o.rolname) AS reachable,
       (SELECT d.datdba = r.oid FROM pg_database d WHERE d.datname = current_database())
           AS owns_database,
       EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = 'oneauth' AND n.nspowner = r.oid)
       OR EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'oneauth' AND c.relowner = r.oid) AS owns_control
FROM pg_roles r WHERE r.rolname = current_user
"""


def service_role_problems(row: Any) -> list[str]:
    """What is wrong with the service's login role, from a row of SERVICE_ROLE_AUDIT_SQL."""
    problems = [
        attribute
        for attribute, index in (
            ("SUPERUSER", 1),
            ("CREATEROLE", 2),
            ("CREATEDB", 3),
            ("INHERIT", 4),
            ("BYPASSRLS", 5),
            ("REPLICATION", 6),
        )
        if row[index]
    ]
    if row[7]:
        problems.append("membership in " + ", ".join(row[7]))
    if row[8]:
        problems.append("ownership of the database")
    if row[9]:
        problems.append("ownership of the control schema")
    return problems


def check_service_row(row: Any) -> None:
    """Raise UnsafeRole, in one line, unless the row describes a least-privilege role."""
    if row is None:
        raise UnsafeRole("cannot read the database login role's attributes")
    problems = service_role_problems(row)
    if problems:
        raise UnsafeRole(
            f"the service's database role {row[0]} has {'; '.join(problems)}: it must be "
            "LOGIN NOINHERIT and a member of app roles only; run `oneauth db bootstrap` "
            "and give `serve` the service URL it prints (D1)"
        )


def check_service_role(conn: Conn) -> None:
    check_service_row(conn.execute(SERVICE_ROLE_AUDIT_SQL).fetchone())


def check_operator_role(conn: Conn) -> None:
    """The CLI's role: refuse a superuser or an inheriting role (either bypasses app isolation)."""
    row = conn.execute(
        "SELECT rolsuper, rolinherit FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:
        raise UnsafeRole("cannot read the login role's attributes")
    if row[0]:
        raise UnsafeRole(
            "the database login role is a superuser, which bypasses per-app privileges; "
            "create dedicated roles with `oneauth db bootstrap`"
        )
    if row[1]:
        raise UnsafeRole(
            "the database login role has INHERIT, so it would hold every app's rights "
            "at once; run `ALTER ROLE ... NOINHERIT` or use `oneauth db bootstrap`"
        )
