"""Create the operator and service roles and the database from an administrator connection.

D1, least privilege: the **operator** role (LOGIN NOINHERIT CREATEROLE) owns the
database and the control schema and runs the CLI's provisioning and migrations;
the **service** role (LOGIN NOINHERIT, no other attribute) is what ``oneauth
serve`` logs in as. Both are NOSUPERUSER and NOINHERIT: they may become an app's
role (``SET ROLE``) but hold no rights on app schemas by themselves, so a query
run outside the connection router's app context cannot read app data (B2).

Idempotent, and a repair: running it again resets both roles' attributes,
removes the service role's memberships in predefined and login roles, grants it
every live app role and re-grants its control-schema privileges. A single-role
installation (before D1) upgrades by running it with ``--operator-role`` set to
its existing role: that role keeps its ownership, a new service role is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from oneauth.db import ops, roles
from oneauth.db.roles import UnsafeRole

__all__ = ["BootstrapError", "Installation", "UnsafeRole", "bootstrap", "redact", "service_dsn"]

OPERATOR_ATTRIBUTES = "LOGIN NOSUPERUSER NOINHERIT CREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS"
SERVICE_ATTRIBUTES = "LOGIN NOSUPERUSER NOINHERIT NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS"


class BootstrapError(RuntimeError):
    """The requested set-up conflicts with what exists; the message says how to resolve it."""


@dataclass(frozen=True, slots=True)
class Installation:
    service_dsn: str  # ONEAUTH_DATABASE_URL of `oneauth serve` and `oneauth worker`
    operator_dsn: str  # ONEAUTH_OPERATOR_DATABASE_URL of the provisioning CLI
    namespace: str  # the role namespace of this installation's app roles (D2)


def bootstrap(
    admin_dsn: str,
    *,
    database: str,
    operator_role: str,
    operator_password: str,
    service_role: str,
    service_password: str,
    namespace: str | None = None,
) -> Installation:
    """Idempotently create (or fix) both roles, the database and the control schema."""
    if operator_role == service_role:
        raise BootstrapError("the operator and service roles must be two different roles")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        _ensure_role(conn, operator_role, OPERATOR_ATTRIBUTES, operator_password)
        _ensure_role(conn, service_role, SERVICE_ATTRIBUTES, service_password)
        _revoke_powerful_memberships(conn, service_role)
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if owner is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database), sql.Identifier(operator_role)
                )
            )
        elif owner[0] == service_role:
            raise BootstrapError(
                f"database {database} is owned by role {service_role}, which would then be "
                "the service role; to upgrade a single-role installation pass "
                f"--operator-role {service_role} and a new --service-role"
            )
        elif owner[0] != operator_role:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(database), sql.Identifier(operator_role)
                )
            )
    operator = service_dsn(
        admin_dsn, role=operator_role, password=operator_password, database=database
    )
    with ops.connect(operator) as conn:
        # Only this installation's two roles connect: another installation's
        # service role on the same cluster has no business here (D2).
        db = sql.Identifier(database)
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, sql.Identifier(service_role))
        )
        ops.migrate_control(conn)
        try:
            chosen = roles.set_installation(conn, service_role=service_role, namespace=namespace)
        except ValueError as exc:
            raise BootstrapError(str(exc)) from None
        for (role,) in conn.execute(
            "SELECT role_name FROM oneauth.apps WHERE status <> 'deleted' ORDER BY app_id"
        ).fetchall():
            roles.grant_app_role(conn, str(role))
    return Installation(
        service_dsn=service_dsn(
            admin_dsn, role=service_role, password=service_password, database=database
        ),
        operator_dsn=operator,
        namespace=chosen,
    )


def _ensure_role(
    conn: psycopg.Connection[tuple[Any, ...]], role: str, attributes: str, password: str
) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    conn.execute(
        sql.SQL("{} ROLE {} {} PASSWORD {}").format(
            sql.SQL("ALTER" if exists else "CREATE"),
            sql.Identifier(role),
            sql.SQL(attributes),
            sql.Literal(password),
        )
    )


def _revoke_powerful_memberships(conn: psycopg.Connection[tuple[Any, ...]], role: str) -> None:
    """The service role is a member of app roles only: drop predefined and login roles."""
    granted = conn.execute(
        "SELECT g.rolname FROM pg_auth_members m"
        " JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
        " WHERE u.rolname = %s AND (g.rolname LIKE 'pg\\_%%' OR g.rolcanlogin OR g.rolsuper"
        " OR g.rolcreaterole OR g.rolcreatedb OR g.rolbypassrls OR g.rolreplication)",
        (role,),
    ).fetchall()
    for (group,) in granted:
        conn.execute(
            sql.SQL("REVOKE {} FROM {} CASCADE").format(sql.Identifier(group), sql.Identifier(role))
        )


def service_dsn(admin_dsn: str, *, role: str, password: str, database: str) -> str:
    """The admin DSN's host and port with another role's credentials and database."""
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    host = str(info.get("host") or "127.0.0.1")
    port = str(info.get("port") or "5432")
    if host.startswith("/"):
        # TCP on loopback is what the service and uvicorn workers use.
        host = "127.0.0.1"
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}:{port}"
    return urlunsplit(("postgresql", netloc, "/" + quote(database), "", ""))


def redact(dsn: str) -> str:
    """The DSN with its password masked, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
