"""``oneauth db``: create the operator and service roles and the database (D1, D2)."""

from __future__ import annotations

import argparse
import secrets

import psycopg

from oneauth.cli.common import fail, print_json
from oneauth.db.bootstrap import BootstrapError, bootstrap, redact
from oneauth.db.naming import InvalidNamespace, validate_namespace


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database set-up", description="Database set-up.")
    cmds = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    p = cmds.add_parser(
        "bootstrap",
        help="create the operator and service roles, the database and the control schema",
        description="Using an administrator connection, create (or fix) two login roles "
        "and a database: the operator role (NOINHERIT CREATEROLE, owns the database and "
        "the control schema; for provision, migrate, delete, keys and clients) and the "
        "service role (LOGIN NOINHERIT and nothing else; for serve and worker). Prints "
        "ONEAUTH_DATABASE_URL (service) and ONEAUTH_OPERATOR_DATABASE_URL (operator). "
        "Idempotent; also upgrades a single-role installation (pass its role as "
        "--operator-role).",
    )
    p.add_argument("--admin-url", required=True, help="a superuser or CREATEROLE+CREATEDB URL")
    p.add_argument("--database", default="oneauth", help="database to create (default oneauth)")
    p.add_argument("--operator-role", help="operator login role (default: the database's name)")
    p.add_argument("--service-role", help="service login role (default: <database>_service)")
    p.add_argument(
        "--namespace",
        type=_namespace,
        help="role namespace of this installation's app roles, 3-12 of a-z0-9 starting "
        "with a letter (default: a random one; fixed once an app exists)",
    )
    p.add_argument("--operator-password", help="default: a new random one")
    p.add_argument("--service-password", help="default: a new random one")
    p.add_argument(
        "--json", action="store_true", help="print the two URLs and the namespace as JSON"
    )
    p.set_defaults(func=cmd_bootstrap)


def _namespace(value: str) -> str:
    try:
        if not validate_namespace(value):
            raise InvalidNamespace("the role namespace cannot be empty")
    except InvalidNamespace as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def cmd_bootstrap(args: argparse.Namespace) -> None:
    operator_role = args.operator_role or args.database
    service_role = args.service_role or f"{args.database}_service"
    try:
        made = bootstrap(
            args.admin_url,
            database=args.database,
            operator_role=operator_role,
            operator_password=args.operator_password or secrets.token_urlsafe(24),
            service_role=service_role,
            service_password=args.service_password or secrets.token_urlsafe(24),
            namespace=args.namespace,
        )
    except BootstrapError as exc:
        fail(str(exc))
    except psycopg.Error as exc:
        fail(f"bootstrap via {redact(args.admin_url)} failed: {str(exc).strip()}")
    if args.json:
        print_json(
            {
                "ONEAUTH_DATABASE_URL": made.service_dsn,
                "ONEAUTH_OPERATOR_DATABASE_URL": made.operator_dsn,
                "service_role": service_role,
                "operator_role": operator_role,
                "namespace": made.namespace,
            }
        )
        return
    print(f"# oneauth serve / oneauth worker (service role {service_role}):")
    print(f"ONEAUTH_DATABASE_URL={made.service_dsn}")
    print(f"# provision, migrate, delete, keys, clients (operator role {operator_role}):")
    print(f"ONEAUTH_OPERATOR_DATABASE_URL={made.operator_dsn}")
    print(f"# role namespace: {made.namespace}")
