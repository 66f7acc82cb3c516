"""``oneauth users``: an app's users as the operator sees them (roles, for now)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import run_in_app
from oneauth.cli.common import print_json
from oneauth.orgs import roles
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.orgs.users import resolve
from oneauth.settings import Settings

USER_HELP = "the user's id, or their email address"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "users",
        help="an app's users: their app roles",
        description="Operator commands about one app's users.",
    )
    cmds = group.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    roles_group = cmds.add_parser(
        "roles",
        help="grant, take and list a user's app roles",
        description="A user's app-wide roles (see 'oneauth roles').",
    )
    rcmds = roles_group.add_subparsers(dest="users_roles_command", required=True, metavar="COMMAND")
    for name, help_text, func in (
        ("add", "give the user a role", cmd_add),
        ("remove", "take a role from the user", cmd_remove),
    ):
        p = rcmds.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        p.add_argument("user", metavar="USER_ID", help=USER_HELP)
        p.add_argument("role", metavar="ROLE")
        p.add_argument("--app", required=True)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
    p = rcmds.add_parser(
        "list",
        help="the user's roles, permissions and org memberships",
        description="The user's app roles, the permissions they give, and the user's "
        "organizations with their org roles.",
    )
    p.add_argument("user", metavar="USER_ID", help=USER_HELP)
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)


def _change(args: argparse.Namespace, add: bool) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> dict[str, Any]:
        user = await resolve(conn, args.user)
        fn = roles.grant if add else roles.revoke
        changed = await fn(conn, user.id, args.role, actor=OPERATOR)
        return {
            "user_id": user.sub,
            "role": args.role,
            "changed": changed,
            "roles": await roles.roles_of(conn, user.id),
        }

    body = run_in_app(args.app, work)
    if args.json:
        print_json(body)
        return
    verb = (
        ("now has" if body["changed"] else "already had")
        if add
        else ("no longer has" if body["changed"] else "did not have")
    )
    print(f"user {body['user_id']} {verb} role {args.role}")


def cmd_add(args: argparse.Namespace) -> None:
    _change(args, add=True)


def cmd_remove(args: argparse.Namespace) -> None:
    _change(args, add=False)


def cmd_list(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> dict[str, Any]:
        user = await resolve(conn, args.user)
        return {
            "user_id": user.sub,
            "email": user.email,
            "roles": await roles.roles_of(conn, user.id),
            "permissions": await roles.permissions_of(conn, user.id),
            "organizations": [
                {"id": org.id, "slug": org.slug, "roles": org_roles}
                for org, org_roles in await orgs.of_user(conn, user.id)
            ],
        }

    body = run_in_app(args.app, work)
    if args.json:
        print_json(body)
        return
    print(f"user:        {body['user_id']} ({body['email']})")
    print(f"roles:       {', '.join(body['roles']) or '-'}")
    print(f"permissions: {', '.join(body['permissions']) or '-'}")
    for org in body["organizations"]:
        print(f"org:         {org['slug']} ({org['id']}): {', '.join(org['roles']) or '-'}")
