"""Create the service's login role and database from an administrator connection.

The login role is NOSUPERUSER and NOINHERIT: it may become any app's role
(``SET ROLE``) but holds no rights on app schemas by itself, so a query run
outside the connection router's app context cannot read app data (B2).
It has CREATEROLE to provision app roles and owns the database to create schemas.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql


class UnsafeRole(RuntimeError):
    """The configured login role would bypass the per-app privilege boundary."""


def bootstrap(admin_dsn: str, *, role: str, password: str, database: str) -> str:
    """Idempotently create role and database; return the service's DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOINHERIT CREATEROLE PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
    return service_dsn(admin_dsn, role=role, password=password, database=database)


def service_dsn(admin_dsn: str, *, role: str, password: str, database: str) -> str:
    """The admin DSN's host and port with the service's credentials and database."""
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    host = str(info.get("host") or "127.0.0.1")
    port = str(info.get("port") or "5432")
    if host.startswith("/"):
        # TCP on loopback is what the service and uvicorn workers use.
        host = "127.0.0.1"
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}:{port}"
    return urlunsplit(("postgresql", netloc, "/" + quote(database), "", ""))


def check_login_role(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Refuse a superuser or inheriting login role: either would bypass app isolation."""
    row = conn.execute(
        "SELECT rolsuper, rolinherit FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:
        raise UnsafeRole("cannot read the login role's attributes")
    describe_unsafe(bool(row[0]), bool(row[1]))


def describe_unsafe(is_super: bool, inherits: bool) -> None:
    if is_super:
        raise UnsafeRole(
            "the database login role is a superuser, which bypasses per-app privileges; "
            "create a dedicated role with `oneauth db bootstrap`"
        )
    if inherits:
        raise UnsafeRole(
            "the database login role has INHERIT, so it would hold every app's rights "
            "at once; run `ALTER ROLE ... NOINHERIT` or use `oneauth db bootstrap`"
        )


def redact(dsn: str) -> str:
    """The DSN with its password masked, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
