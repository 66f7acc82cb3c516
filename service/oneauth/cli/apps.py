"""``oneauth apps``: provision, list, show, suspend, resume, delete."""

from __future__ import annotations

import argparse
import time

from oneauth.apps import lifecycle
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId
from oneauth.db.roles import UnsafeRole, check_operator_role
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apps = sub.add_parser("apps", help="provision and manage apps", description="Manage apps.")
    cmds = apps.add_subparsers(dest="apps_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "provision",
        help="create an app (idempotent)",
        description="Create the app's registry row, role, schema and tables "
        "in one transaction. Running it again for an identical app changes nothing.",
    )
    p.add_argument("app_id", help="3-40 chars: lowercase letters, digits, single hyphens")
    p.add_argument("--name", required=True, help="display name shown to users")
    p.add_argument("--json", action="store_true", help="print the app as JSON")
    p.set_defaults(func=cmd_provision)

    p = cmds.add_parser("list", help="list apps", description="List registered apps.")
    p.add_argument("--all", action="store_true", help="include deleted apps (tombstones)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show one app", description="Show one app.")
    p.add_argument("app_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    for name, status, text in (
        ("suspend", "suspended", "refuse all traffic for an app"),
        ("resume", "active", "serve a suspended app again"),
    ):
        p = cmds.add_parser(name, help=text, description=text.capitalize() + ".")
        p.add_argument("app_id")
        p.set_defaults(func=cmd_set_status, status=status)

    p = cmds.add_parser(
        "delete",
        help="drop an app's schema and role (irreversible)",
        description="Drop the app's schema (all users, keys and logs) and role; "
        "the registry keeps a tombstone so the app_id is never reused.",
    )
    p.add_argument("app_id")
    p.add_argument("--yes", action="store_true", help="confirm: this destroys the app's data")
    p.set_defaults(func=cmd_delete)


def _conn(settings: Settings | None = None) -> tuple[lifecycle.Conn, str]:
    settings = settings or load_settings()
    conn = ops.connect(settings.operator_url)
    try:
        check_operator_role(conn)
    except UnsafeRole as exc:
        conn.close()
        fail(str(exc))
    return conn, settings.public_url


def cmd_provision(args: argparse.Namespace) -> None:
    settings = load_settings()
    conn, _ = _conn(settings)
    started = time.perf_counter()
    with conn:
        try:
            result = lifecycle.provision(conn, settings, args.app_id, args.name)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    elapsed = time.perf_counter() - started
    issuer = settings.issuer_for(result.app.app_id)
    if args.json:
        body = result.app.to_json(issuer)
        body.update(result.extra)
        body["created"] = result.created
        print_json(body)
        return
    verb = "provisioned" if result.created else "already provisioned, unchanged:"
    print(f"{verb} app {result.app.app_id} ({result.app.display_name}) in {elapsed * 1000:.0f} ms")
    print(f"  issuer:  {issuer}")
    for key, value in result.extra.items():
        print(f"  {key}: {value}")


def cmd_list(args: argparse.Namespace) -> None:
    conn, public_url = _conn()
    with conn:
        apps = lifecycle.list_apps(conn, include_deleted=args.all)
    if args.json:
        print_json([a.to_json(f"{public_url}/apps/{a.app_id}") for a in apps])
        return
    if not apps:
        print("no apps; create one with `oneauth apps provision <app_id> --name ...`")
        return
    print(f"{'APP_ID':<40} {'STATUS':<10} {'VERSION':>7}  NAME")
    for a in apps:
        print(f"{a.app_id:<40} {a.status:<10} {a.schema_version:>7}  {a.display_name}")


def cmd_show(args: argparse.Namespace) -> None:
    conn, public_url = _conn()
    with conn:
        try:
            app = lifecycle.get(conn, args.app_id)
        except InvalidAppId as exc:
            fail(str(exc))
    if app is None:
        fail(f"no app {args.app_id!r}")
    body = app.to_json(f"{public_url}/apps/{app.app_id}")
    if args.json:
        print_json(body)
        return
    for key, value in body.items():
        print(f"{key + ':':<16} {value}")


def cmd_set_status(args: argparse.Namespace) -> None:
    conn, _ = _conn()
    with conn:
        try:
            app = lifecycle.set_status(conn, args.app_id, args.status)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    print(f"app {app.app_id} is {app.status}")


def cmd_delete(args: argparse.Namespace) -> None:
    if not args.yes:
        fail("deleting an app destroys all its data and keys; pass --yes to confirm")
    conn, _ = _conn()
    with conn:
        try:
            lifecycle.delete(conn, args.app_id)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    print(f"app {args.app_id} deleted (schema and role dropped; tombstone kept)")
