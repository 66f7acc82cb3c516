"""``oneauth roles``: an app's roles and their permissions (issue 13)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import run_in_app
from oneauth.cli.common import print_json
from oneauth.orgs import roles
from oneauth.orgs.actor import OPERATOR
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "roles",
        help="app roles and permissions",
        description="An app's roles: each bundles permissions (names such as invoice:read) "
        "and is granted to users app-wide with 'oneauth users roles add'. Access tokens "
        "carry the user's roles (and permissions when the client asks).",
    )
    cmds = group.add_subparsers(dest="roles_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "create",
        help="create a role",
        description="Create a role with its permissions; permissions the app does not "
        "have yet are created.",
    )
    p.add_argument("name", metavar="NAME", help="1-64 ASCII letters, digits or ':._-'")
    p.add_argument("--app", required=True)
    p.add_argument(
        "--permission",
        action="append",
        default=[],
        dest="permissions",
        metavar="P",
        help="a permission of the role, e.g. invoice:read (repeatable)",
    )
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="list roles", description="List the app's roles.")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser(
        "delete",
        help="delete a role",
        description="Delete a role; users lose it (tokens already issued keep it until "
        "they expire).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_delete)


def _show(role: roles.Role) -> str:
    return f"{role.name:<32} {','.join(role.permissions) or '-'}"


def cmd_create(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> roles.Role:
        return await roles.create_role(
            conn,
            args.name,
            permissions=args.permissions,
            description=args.description,
            actor=OPERATOR,
        )

    role = run_in_app(args.app, work)
    if args.json:
        print_json(role.to_json())
    else:
        print(f"role {role.name} created: {', '.join(role.permissions) or 'no permissions'}")


def cmd_list(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> list[Any]:
        return await roles.list_roles(conn)

    found = run_in_app(args.app, work)
    if args.json:
        print_json([r.to_json() for r in found])
        return
    for role in found:
        print(_show(role))


def cmd_delete(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> None:
        await roles.delete_role(conn, args.name, actor=OPERATOR)

    run_in_app(args.app, work)
    if args.json:
        print_json({"name": args.name, "deleted": True})
    else:
        print(f"role {args.name} deleted")
