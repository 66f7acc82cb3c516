"""``oneauth orgs``: organizations of an app, their members, roles, invitations and
domains (issue 13). Every command runs the same async services as the HTTP API
(``oneauth.orgs``), as the operator, in one transaction of the app's context."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from oneauth.apps.dek import KeyRing
from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import run_in_app
from oneauth.cli.common import fail, print_json
from oneauth.orgs import domains, invitations
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import OPERATOR
from oneauth.settings import Settings

ORG_HELP = "the organization's id (org_...) or slug"
USER_HELP = "the user's id, or their email address"
Work = Callable[[asyncpg.Connection, AppRecord, Settings], Awaitable[Any]]


def _common(p: argparse.ArgumentParser, *, org: bool = True) -> None:
    if org:
        p.add_argument("org", metavar="ORG_ID", help=ORG_HELP)
    p.add_argument("--app", required=True, help="the app the organization belongs to")
    p.add_argument("--json", action="store_true", help="print JSON")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "orgs",
        help="organizations of an app",
        description="Organizations: customer tenants inside one app, with members, org "
        "roles, invitations and email domains. An org id or slug means something in "
        "its own app only.",
    )
    cmds = group.add_subparsers(dest="orgs_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "create",
        help="create an organization",
        description="Create an organization. Without --slug one is derived from the name "
        "(acme, acme-2, ...).",
    )
    p.add_argument("--name", required=True, help="display name (1-200 characters)")
    p.add_argument("--slug", help="1-64 lower-case ASCII letters, digits or inner hyphens")
    p.add_argument("--admin", metavar="USER", help="a user who joins as admin at once")
    _common(p, org=False)
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="list organizations", description="List by slug.")
    p.add_argument("--cursor", help="the next_cursor of the previous page")
    p.add_argument("--limit", type=int, default=100)
    _common(p, org=False)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show an organization", description="Show one org.")
    _common(p)
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser(
        "suspend",
        help="refuse new org-scoped tokens",
        description="Suspend: no new token for this org from now on (sign-in, refresh, "
        "client_credentials); members stay.",
    )
    _common(p)
    p.set_defaults(func=cmd_suspend)

    p = cmds.add_parser("resume", help="end a suspension", description="Resume an org.")
    _common(p)
    p.set_defaults(func=cmd_resume)

    p = cmds.add_parser(
        "delete",
        help="delete an organization",
        description="Delete an org with its members, roles, invitations, domains and org "
        "clients; every session scoped to it ends at once.",
    )
    _common(p)
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_delete)

    p = cmds.add_parser(
        "update",
        help="change an organization's settings",
        description="Change the name, slug, MFA requirement, domain join policy, default "
        "role or branding; options not given stay as they are.",
    )
    _common(p)
    p.add_argument("--name")
    p.add_argument("--slug")
    p.add_argument(
        "--mfa-required",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="members sign in with two factors for this org",
    )
    p.add_argument(
        "--join-policy",
        choices=orgs.JOIN_POLICIES,
        help="domain auto-join for verified addresses at the org's verified domains",
    )
    p.add_argument("--default-role", help="the org role new members get (default: member)")
    p.add_argument("--clear-default-role", action="store_true")
    p.add_argument("--display-name", help="branding: the name on the hosted pages")
    p.add_argument("--logo-url", help="branding: an https URL")
    p.add_argument("--primary-color", help="branding: #rrggbb")
    p.add_argument(
        "--clear-branding",
        action="append",
        default=[],
        choices=orgs.BRANDING_KEYS,
        help="remove a branding value (repeatable)",
    )
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser(
        "members",
        help="list, add and remove members",
        usage="oneauth orgs members [list|add|remove|set-roles] --app APP ORG_ID [USER] "
        "[--role R ...] [--json]",
        description="'orgs members --app A ORG_ID' lists the members; 'add ORG_ID USER' adds "
        "a user (id or email) with --role roles (default: the org's default role); "
        "'remove ORG_ID USER' ends the membership and the user's sessions for this org; "
        "'set-roles ORG_ID USER --role R ...' replaces the user's org roles.",
    )
    # argparse cannot mix optional and positional words after a first
    # positional (``add --app A ORG USER``): the rest is parsed again below.
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    _members_options(p)
    p.set_defaults(func=cmd_members)

    roles_p = cmds.add_parser(
        "roles",
        help="org roles: the app's template roles and an org's custom roles",
        description="Every org has the app's template org roles (admin, member, ...); an org "
        "may add custom roles of its own, usable in that org only.",
    )
    rcmds = roles_p.add_subparsers(dest="orgs_roles_command", required=True, metavar="COMMAND")
    p = rcmds.add_parser(
        "create",
        help="create a custom role of an org",
        description="Create a custom role of this org from existing permissions; its name "
        "differs from every template role.",
    )
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--permission",
        action="append",
        default=[],
        dest="permissions",
        metavar="P",
        help="an existing permission, e.g. org:read (repeatable)",
    )
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_roles_create)
    p = rcmds.add_parser(
        "list", help="roles usable in an org", description="Template roles, then custom ones."
    )
    _common(p)
    p.set_defaults(func=cmd_roles_list)
    p = rcmds.add_parser(
        "delete", help="delete a custom role", description="Members lose the role."
    )
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_roles_delete)

    tmpl = cmds.add_parser(
        "template-roles",
        help="the app's template org roles, which every org has",
        description="The app's one set of org roles (seeded: admin, member), usable in every "
        "org of the app. Custom roles of one org: 'orgs roles'.",
    )
    tcmds = tmpl.add_subparsers(dest="orgs_template_command", required=True, metavar="COMMAND")
    p = tcmds.add_parser(
        "create",
        help="add a template org role",
        description="Add an org role every org of the app has, from existing permissions; "
        "its name differs from every org's custom roles.",
    )
    _common(p, org=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--permission",
        action="append",
        default=[],
        dest="permissions",
        metavar="P",
        help="an existing permission, e.g. org:read (repeatable)",
    )
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_template_create)
    p = tcmds.add_parser("list", help="the template org roles", description="With permissions.")
    _common(p, org=False)
    p.set_defaults(func=cmd_template_list)

    p = cmds.add_parser(
        "invite",
        help="invite an email address (mails the link)",
        description="Invite an address with org roles (default: the org's default role at "
        "acceptance). The link {issuer}/invitations/accept?token=... is mailed through the "
        "outbox and printed once; it works once, for the invited address only, once that "
        "address is verified. Inviting the address again replaces the open invitation.",
    )
    _common(p)
    p.add_argument("--email", required=True)
    p.add_argument("--role", action="append", default=[], dest="roles", metavar="R")
    p.add_argument("--ttl-days", type=int, default=7, help="days the link works (1-30)")
    p.set_defaults(func=cmd_invite)

    inv = cmds.add_parser(
        "invitations", help="list and revoke invitations", description="An org's invitations."
    )
    icmds = inv.add_subparsers(dest="orgs_invitations_command", required=True, metavar="COMMAND")
    p = icmds.add_parser("list", help="open invitations", description="Open invitations.")
    _common(p)
    p.add_argument("--all", action="store_true", help="also accepted, revoked and expired ones")
    p.set_defaults(func=cmd_invitations_list)
    p = icmds.add_parser(
        "revoke", help="revoke an open invitation", description="Its link stops working."
    )
    _common(p)
    p.add_argument("invitation", metavar="INVITATION_ID")
    p.set_defaults(func=cmd_invitations_revoke)

    dom = cmds.add_parser(
        "domains",
        help="an org's email domains",
        description="Email domains for domain auto-join. 'verify' is the operator's word "
        "that the org owns the domain (no DNS check); a verified domain belongs to one "
        "org of the app.",
    )
    dcmds = dom.add_subparsers(dest="orgs_domains_command", required=True, metavar="COMMAND")
    for name, help_text, func in (
        ("add", "list a domain (unverified)", cmd_domains_add),
        ("verify", "mark a domain verified", cmd_domains_verify),
        ("remove", "drop a domain", cmd_domains_remove),
    ):
        p = dcmds.add_parser(name, help=help_text, description=help_text.capitalize() + ".")
        _common(p)
        p.add_argument("domain", metavar="DOMAIN")
        p.set_defaults(func=func)
    p = dcmds.add_parser("list", help="the org's domains", description="The org's domains.")
    _common(p)
    p.set_defaults(func=cmd_domains_list)


# --- output ----------------------------------------------------------------------------


def _print_org(org: orgs.Org, as_json: bool) -> None:
    if as_json:
        print_json(org.to_json())
        return
    print(f"id:           {org.id}")
    print(f"slug:         {org.slug}")
    print(f"name:         {org.name}")
    print(f"status:       {org.status}")
    print(f"mfa_required: {str(org.mfa_required).lower()}")
    print(f"join_policy:  {org.join_policy}")
    print(f"default_role: {org.default_role or '- (member)'}")
    for key, value in sorted(org.branding.items()):
        print(f"branding.{key}: {value}")


def _org_work(
    fn: Callable[[asyncpg.Connection, str], Awaitable[orgs.Org]],
) -> Callable[[argparse.Namespace], None]:
    def command(args: argparse.Namespace) -> None:
        async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> orgs.Org:
            return await fn(conn, args.org)

        _print_org(run_in_app(args.app, work), args.json)

    return command


# --- orgs ------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> orgs.Org:
        return await orgs.create(
            conn, name=args.name, slug=args.slug, creator=args.admin, actor=OPERATOR
        )

    _print_org(run_in_app(args.app, work), args.json)


def cmd_list(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> tuple[list[orgs.Org], str | None]:
        return await orgs.list_all(conn, cursor=args.cursor, limit=args.limit)

    found, cursor = run_in_app(args.app, work)
    if args.json:
        print_json({"organizations": [o.to_json() for o in found], "next_cursor": cursor})
        return
    for org in found:
        print(f"{org.id:<28} {org.slug:<32} {org.status:<10} {org.name}")
    if cursor:
        print(f"(more: --cursor {cursor})")


async def _require(conn: asyncpg.Connection, org_id: str) -> orgs.Org:
    return await orgs.require_org(conn, org_id)


cmd_show = _org_work(_require)
cmd_suspend = _org_work(lambda conn, org_id: orgs.suspend(conn, org_id, actor=OPERATOR))
cmd_resume = _org_work(lambda conn, org_id: orgs.resume(conn, org_id, actor=OPERATOR))


def cmd_delete(args: argparse.Namespace) -> None:
    if not args.yes:
        fail("deleting an organization ends its members' org sessions; pass --yes to confirm")

    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> tuple[orgs.Org, int]:
        org = await orgs.require_org(conn, args.org)
        return org, await orgs.delete(conn, org.id, actor=OPERATOR)

    org, ended = run_in_app(args.app, work)
    if args.json:
        print_json({"id": org.id, "slug": org.slug, "deleted": True, "sessions_ended": ended})
    else:
        print(f"organization {org.slug} ({org.id}) deleted; {ended} sessions ended")


def cmd_update(args: argparse.Namespace) -> None:
    if args.default_role and args.clear_default_role:
        fail("give --default-role or --clear-default-role, not both")
    branding: dict[str, Any] = {key: None for key in args.clear_branding}
    for key, value in (
        ("display_name", args.display_name),
        ("logo_url", args.logo_url),
        ("primary_color", args.primary_color),
    ):
        if value is not None:
            branding[key] = value
    changes: dict[str, Any] = {
        "name": args.name,
        "slug": args.slug,
        "mfa_required": args.mfa_required,
        "join_policy": args.join_policy,
        "branding": branding or None,
    }
    if args.default_role or args.clear_default_role:
        changes["default_role"] = None if args.clear_default_role else args.default_role

    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> orgs.Org:
        return await orgs.update(conn, args.org, actor=OPERATOR, **changes)

    _print_org(run_in_app(args.app, work), args.json)


# --- members ---------------------------------------------------------------------------

MEMBER_ACTIONS = ("list", "add", "remove", "set-roles")


def _members_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", action="append", default=[], dest="roles", metavar="R")
    p.add_argument("--app", help="the app the organization belongs to (required)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _members_args(args: argparse.Namespace) -> argparse.Namespace:
    inner = argparse.ArgumentParser(prog="oneauth orgs members", add_help=False)
    inner.add_argument("words", nargs="*")
    _members_options(inner)
    parsed = inner.parse_intermixed_args(args.rest)
    parsed.app = parsed.app or args.app
    parsed.json = parsed.json or args.json
    parsed.roles = [*args.roles, *parsed.roles]
    return parsed


def cmd_members(args: argparse.Namespace) -> None:
    args = _members_args(args)
    words = list(args.words)
    action = words.pop(0) if words and words[0] in MEMBER_ACTIONS else "list"
    wanted = 1 if action == "list" else 2
    if len(words) != wanted or not args.app:
        fail(
            "usage: oneauth orgs members [list] --app APP ORG_ID | "
            "orgs members add|remove|set-roles --app APP ORG_ID USER [--role R ...]"
        )
    org_id = words[0]
    user = words[1] if wanted == 2 else ""

    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        if action == "list":
            everyone: list[orgs.Member] = []
            cursor: str | None = None
            while True:
                page, cursor = await orgs.members(conn, org_id, cursor=cursor, limit=orgs.MAX_PAGE)
                everyone += page
                if cursor is None:
                    return everyone
        if action == "add":
            return await orgs.add_member(
                conn, org_id, user, roles=args.roles or None, actor=OPERATOR
            )
        if action == "set-roles":
            return await orgs.set_member_roles(conn, org_id, user, args.roles, actor=OPERATOR)
        org = await orgs.require_org(conn, org_id)
        return org, await orgs.remove_member(conn, org.id, user, actor=OPERATOR)

    result = run_in_app(args.app, work)
    if action == "list":
        if args.json:
            print_json([m.to_json() for m in result])
        for m in [] if args.json else result:
            print(f"{m.user_id}  {m.email:<40} {','.join(m.roles) or '-':<24} {m.joined_via}")
    elif action == "remove":
        org, ended = result
        if args.json:
            print_json({"org_id": org.id, "user": user, "removed": True, "sessions_ended": ended})
        else:
            print(f"{user} is no longer a member of {org.slug}; {ended} sessions ended")
    elif args.json:
        print_json(result.to_json())
    else:
        print(f"{result.user_id} in {result.org_id}: {', '.join(result.roles) or 'no roles'}")


# --- org roles -------------------------------------------------------------------------


def cmd_roles_create(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> orgs.OrgRole:
        return await orgs.create_custom_role(
            conn,
            args.org,
            args.name,
            args.permissions,
            description=args.description,
            actor=OPERATOR,
        )

    role = run_in_app(args.app, work)
    if args.json:
        print_json(role.to_json())
    else:
        print(f"org role {role.name} created: {', '.join(role.permissions) or 'no permissions'}")


def cmd_roles_list(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> list[orgs.OrgRole]:
        org = await orgs.require_org(conn, args.org)
        return await orgs.org_roles(conn, org.id)

    found = run_in_app(args.app, work)
    if args.json:
        print_json([r.to_json() for r in found])
        return
    for role in found:
        kind = "custom" if role.custom else "template"
        print(f"{role.name:<32} {kind:<9} {','.join(role.permissions) or '-'}")


def cmd_roles_delete(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> None:
        await orgs.delete_custom_role(conn, args.org, args.name, actor=OPERATOR)

    run_in_app(args.app, work)
    if args.json:
        print_json({"name": args.name, "deleted": True})
    else:
        print(f"org role {args.name} deleted")


def cmd_template_create(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> orgs.OrgRole:
        return await orgs.create_org_role(
            conn,
            None,
            args.name,
            args.permissions,
            description=args.description,
            actor=OPERATOR,
        )

    role = run_in_app(args.app, work)
    if args.json:
        print_json(role.to_json())
    else:
        print(f"template org role {role.name}: {', '.join(role.permissions) or 'no permissions'}")


def cmd_template_list(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> list[orgs.OrgRole]:
        return await orgs.org_roles(conn, None)

    found = run_in_app(args.app, work)
    if args.json:
        print_json([r.to_json() for r in found])
        return
    for role in found:
        print(f"{role.name:<32} {','.join(role.permissions) or '-'}")


# --- invitations -----------------------------------------------------------------------


def cmd_invite(args: argparse.Namespace) -> None:
    if not 1 <= args.ttl_days <= 30:
        fail("--ttl-days must be 1..30")

    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> tuple[invitations.Invitation, str]:
        sender = invitations.OutboxSender(
            settings, app, KeyRing.with_apps(settings.master_key, app)
        )
        invitation, token = await invitations.invite(
            sender,
            conn,
            args.org,
            args.email,
            roles=args.roles,
            invited_by=OPERATOR,
            ttl=args.ttl_days * 86400,
        )
        return invitation, f"{sender.page(invitations.ACCEPT_PAGE)}?token={token}"

    invitation, link = run_in_app(args.app, work)
    if args.json:
        print_json({**invitation.to_json(), "link": link})
        return
    print(f"invitation: {invitation.id}")
    print(f"expires:    {invitation.expires_at.isoformat()}")
    print(f"link:       {link}")
    print("(mailed to the address; the link is shown only now and stored as a keyed hash)")


def cmd_invitations_list(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> list[invitations.Invitation]:
        return await invitations.list_open(conn, args.org, include_closed=args.all)

    found = run_in_app(args.app, work)
    if args.json:
        print_json([i.to_json() for i in found])
        return
    for i in found:
        print(
            f"{i.id}  {i.email:<40} {i.state:<9} {','.join(i.roles) or '-':<20}"
            f" {i.expires_at:%Y-%m-%d}"
        )


def cmd_invitations_revoke(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> invitations.Invitation:
        return await invitations.revoke(conn, args.org, args.invitation, actor=OPERATOR)

    revoked = run_in_app(args.app, work)
    if args.json:
        print_json(revoked.to_json())
    else:
        print(f"invitation {revoked.id} revoked")


# --- domains ---------------------------------------------------------------------------


def _domain_command(
    fn: Callable[[asyncpg.Connection, str, str], Awaitable[domains.Domain | None]], verb: str
) -> Callable[[argparse.Namespace], None]:
    def command(args: argparse.Namespace) -> None:
        async def work(
            conn: asyncpg.Connection, app: AppRecord, settings: Settings
        ) -> domains.Domain | None:
            return await fn(conn, args.org, args.domain)

        found = run_in_app(args.app, work)
        if args.json:
            print_json(found.to_json() if found else {"domain": args.domain, "removed": True})
        else:
            print(f"domain {found.domain if found else args.domain} {verb}")

    return command


cmd_domains_add = _domain_command(
    lambda conn, org, d: domains.add(conn, org, d, actor=OPERATOR), "added (unverified)"
)
cmd_domains_verify = _domain_command(
    lambda conn, org, d: domains.verify(conn, org, d, actor=OPERATOR), "verified"
)
cmd_domains_remove = _domain_command(
    lambda conn, org, d: domains.remove(conn, org, d, actor=OPERATOR), "removed"
)


def cmd_domains_list(args: argparse.Namespace) -> None:
    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> list[domains.Domain]:
        return await domains.list_domains(conn, args.org)

    found = run_in_app(args.app, work)
    if args.json:
        print_json([d.to_json() for d in found])
        return
    for d in found:
        print(f"{d.domain:<40} {'verified' if d.verified else 'unverified'}")
