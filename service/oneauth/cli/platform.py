"""``oneauth platform``: the control plane (init, API clients, operators, job runner)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from oneauth.apps import lifecycle
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId
from oneauth.db.roles import UnsafeRole, check_operator_role
from oneauth.identity.passwords import PasswordHasher, WeakPassword, check_password
from oneauth.platform import PLATFORM_DISPLAY_NAME, bootstrap, operators
from oneauth.settings import Settings


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "platform",
        help="the control plane: platform app, API clients, operators, job runner",
        description="The control plane is the reserved app `platform` (issuer "
        "{ONEAUTH_PUBLIC_URL}/platform): its users are the console's operators, its "
        "client-credentials clients call the platform API (/admin/v1/apps), its audit "
        "log is the control-plane audit log.",
    )
    cmds = group.add_subparsers(dest="platform_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "init",
        help="create the platform app and the console's client (idempotent)",
        description="Provision the reserved app `platform` (schema, role, keys) and "
        "register the console's first-party client (code + PKCE, redirect "
        "{ONEAUTH_PUBLIC_URL}/console/callback). `oneauth migrate` and `make run` run it; "
        "running it again changes nothing.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_init)

    clients = cmds.add_parser(
        "clients",
        help="the platform API's clients",
        description="Client-credentials clients of the platform app: they get tokens at "
        "{ONEAUTH_PUBLIC_URL}/platform/oauth/token and call /admin/v1/apps.",
    )
    ccmds = clients.add_subparsers(dest="platform_clients_command", required=True)
    p = ccmds.add_parser(
        "create",
        help="register a client (its secret is printed once)",
        description="Register a confidential client_credentials client of the platform "
        "app with platform scopes (platform:apps:read, platform:apps:write). The secret "
        "is printed once and stored hashed.",
    )
    p.add_argument("--name", required=True)
    p.add_argument(
        "--scopes",
        type=_csv,
        required=True,
        help="comma-separated: platform:apps:read,platform:apps:write",
    )
    p.add_argument("--access-token-ttl", type=int, help="seconds (60..3600)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_clients_create)
    p = ccmds.add_parser("list", help="list the clients", description="List the API's clients.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_clients_list)
    p = ccmds.add_parser(
        "disable",
        help="refuse a client from now on",
        description="Disable a client: no new tokens, and its tokens stop working.",
    )
    p.add_argument("client_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_clients_disable)

    group_ops = cmds.add_parser(
        "operators",
        help="console operators and their grants",
        description="Operators are users of the platform app; grants say which apps "
        "(one, or --all) each may administer in the console, as viewer or admin.",
    )
    ocmds = group_ops.add_subparsers(dest="platform_operators_command", required=True)
    p = ocmds.add_parser(
        "create",
        help="create an operator (a user of the platform app)",
        description="Create an operator with a verified email. The password comes from "
        "--password-file (a file, or - for standard input); without one the operator "
        "sets it with the platform's password reset.",
    )
    p.add_argument("--email", required=True)
    p.add_argument("--password-file", metavar="F", help="file holding the password, or -")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_operators_create)
    p = ocmds.add_parser(
        "grant",
        help="let an operator administer one app or all",
        description="Give an operator a role on one app (--app) or on every app (--all); "
        "viewer = the read scopes, admin = all admin scopes. Replaces the role on that app.",
    )
    p.add_argument("--email", required=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--app", metavar="APP_ID")
    where.add_argument("--all", action="store_true", help="every app")
    p.add_argument("--role", required=True, choices=operators.ROLES)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_operators_grant)
    p = ocmds.add_parser(
        "revoke",
        help="take an operator's grant on one app or the all-apps grant",
        description="Remove a grant; the console's tokens for that app stop at once.",
    )
    p.add_argument("--email", required=True)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--app", metavar="APP_ID")
    where.add_argument("--all", action="store_true", help="the all-apps grant")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_operators_revoke)
    p = ocmds.add_parser("list", help="list operators", description="Operators and grants.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_operators_list)

    p = cmds.add_parser(
        "worker",
        help="run the platform API's job runner (operator role)",
        description="Execute the platform API's queued writes (provision, configure, "
        "suspend, resume, delete) as the operator role (ONEAUTH_OPERATOR_DATABASE_URL), "
        "with the lifecycle functions `oneauth apps` uses: LISTEN for new jobs, poll "
        "besides; any number may run (FOR UPDATE SKIP LOCKED). `make run` runs one in "
        "the service (ONEAUTH_PLATFORM_WORKER=true).",
    )
    p.add_argument("--once", action="store_true", help="run the queued jobs, then exit")
    p.set_defaults(func=cmd_worker)


def _conn(settings: Settings | None = None) -> lifecycle.Conn:
    settings = settings or load_settings()
    conn = ops.connect(settings.operator_url)
    try:
        check_operator_role(conn)
    except UnsafeRole as exc:
        conn.close()
        fail(str(exc))
    return conn


def run_init(settings: Settings) -> bootstrap.InitResult:
    """``platform init`` for migrate and ``dev run`` (fails the command on a refusal)."""
    with ops.connect(settings.operator_url) as conn:
        try:
            return bootstrap.init(conn, settings)
        except (lifecycle.AppError, InvalidAppId) as exc:
            fail(f"platform init: {exc}")


def cmd_init(args: argparse.Namespace) -> None:
    settings = load_settings()
    _conn(settings).close()
    result = run_init(settings)
    if args.json:
        print_json(result.to_json(settings))
        return
    state = "created" if result.created else "already there"
    print(f"platform app ({PLATFORM_DISPLAY_NAME}): {state}")
    print(f"  issuer:             {settings.issuer_for(result.app.app_id)}")
    print(f"  console client_id:  {result.console_client_id}")
    print(f"  console redirect:   {result.console_redirect_uri}")
    if not result.changed:
        print("  nothing changed")


def _refused(exc: Exception) -> None:
    fail(str(exc))


def cmd_clients_create(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            client, secret = operators.create_client(
                conn, args.name, args.scopes, access_token_ttl=args.access_token_ttl
            )
        except operators.PlatformError as exc:
            _refused(exc)
    body: dict[str, Any] = client.to_json()
    body["client_secret"] = secret
    if args.json:
        print_json(body)
        return
    print(f"client_id:     {client.client_id}")
    print(f"client_secret: {secret}")
    print("(the secret is shown only now; it is stored hashed)")
    print(f"scopes:        {' '.join(sorted(client.scopes))}")


def cmd_clients_list(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            found = operators.list_clients(conn)
        except operators.PlatformError as exc:
            _refused(exc)
    if args.json:
        print_json([c.to_json() for c in found])
        return
    for c in found:
        state = "disabled" if c.disabled else "enabled"
        print(f"{c.client_id:<28} {state:<9} {' '.join(sorted(c.scopes)):<42} {c.name}")


def cmd_clients_disable(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            operators.disable_client(conn, args.client_id)
        except operators.PlatformError as exc:
            _refused(exc)
    if args.json:
        print_json({"client_id": args.client_id, "disabled": True})
        return
    print(f"client {args.client_id} disabled")


def _read_password(path: str) -> str:
    try:
        if path == "-" and sys.stdin.isatty():
            raw = getpass.getpass("password for the operator: ")
        elif path == "-":
            raw = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                raw = f.read()
    except OSError as exc:
        fail(f"cannot read the password from {path}: {exc}")
    return raw.rstrip("\r\n")


def cmd_operators_create(args: argparse.Namespace) -> None:
    settings = load_settings()
    password_hash = None
    if args.password_file:
        password = _read_password(args.password_file)
        try:
            check_password(password, email=args.email, app_name=PLATFORM_DISPLAY_NAME)
        except WeakPassword as exc:
            fail(f"password refused: {exc.message}")
        hasher = PasswordHasher(max_workers=1)
        try:
            password_hash = hasher.hash_sync(password)
        finally:
            hasher.close()
    with _conn(settings) as conn:
        try:
            sub, created = operators.create_operator(conn, args.email, password_hash)
        except (operators.PlatformError, ValueError) as exc:
            _refused(exc)
    if args.json:
        print_json({"sub": sub, "email": args.email, "created": created})
        return
    print(f"operator {args.email}: {'created' if created else 'exists, unchanged'} ({sub})")


def cmd_operators_grant(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            changed = operators.grant(conn, args.email, None if args.all else args.app, args.role)
        except (operators.PlatformError, InvalidAppId) as exc:
            _refused(exc)
    if args.json:
        print_json(
            {
                "email": args.email,
                "app_id": None if args.all else args.app,
                "all_apps": bool(args.all),
                "role": args.role,
                "changed": changed,
            }
        )
        return
    where = "every app" if args.all else f"app {args.app}"
    print(f"{args.email}: {args.role} of {where}{'' if changed else ' (unchanged)'}")


def cmd_operators_revoke(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            gone = operators.revoke(conn, args.email, None if args.all else args.app)
        except (operators.PlatformError, InvalidAppId) as exc:
            _refused(exc)
    if args.json:
        print_json(
            {
                "email": args.email,
                "app_id": None if args.all else args.app,
                "all_apps": bool(args.all),
                "revoked": gone,
            }
        )
        return
    where = "every app" if args.all else f"app {args.app}"
    print(f"{args.email}: grant on {where} {'revoked' if gone else 'did not exist'}")


def cmd_operators_list(args: argparse.Namespace) -> None:
    with _conn() as conn:
        try:
            found = operators.list_operators(conn)
        except operators.PlatformError as exc:
            _refused(exc)
    if args.json:
        print_json([o.to_json() for o in found])
        return
    if not found:
        print("no operators; create one with `oneauth platform operators create --email ...`")
    for o in found:
        grants = ", ".join(f"{g['app_id'] or '*'}={g['role']}" for g in o.grants) or "-"
        print(f"{o.email:<40} {o.status:<9} {grants}  ({o.sub})")


def cmd_worker(args: argparse.Namespace) -> None:
    import asyncio

    from oneauth.platform import runner

    settings = load_settings()
    _conn(settings).close()  # refuse an unsafe operator role before running anything
    asyncio.run(runner.run_forever(settings, once=args.once))
