"""``oneauth db``: create the service's login role and database."""

from __future__ import annotations

import argparse
import secrets

import psycopg

from oneauth.cli.common import fail
from oneauth.db.bootstrap import bootstrap, redact


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database set-up", description="Database set-up.")
    cmds = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p = cmds.add_parser(
        "bootstrap",
        help="create the service's login role and database",
        description="Using an administrator connection, create (or fix) a NOSUPERUSER "
        "NOINHERIT CREATEROLE login role and a database it owns, then print the "
        "ONEAUTH_DATABASE_URL to use. Idempotent.",
    )
    p.add_argument("--admin-url", required=True, help="a superuser or CREATEROLE+CREATEDB URL")
    p.add_argument("--role", default="oneauth", help="login role to create (default oneauth)")
    p.add_argument("--database", default="oneauth", help="database to create (default oneauth)")
    p.add_argument("--password", help="the role's password (default: a new random one)")
    p.set_defaults(func=cmd_bootstrap)


def cmd_bootstrap(args: argparse.Namespace) -> None:
    password = args.password or secrets.token_urlsafe(24)
    try:
        dsn = bootstrap(args.admin_url, role=args.role, password=password, database=args.database)
    except psycopg.Error as exc:
        fail(f"bootstrap via {redact(args.admin_url)} failed: {exc}")
    print(dsn)
