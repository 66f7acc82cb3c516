"""``oneauth clients``: register and manage an app's OAuth clients."""

from __future__ import annotations

import argparse
import json
from typing import Any

from oneauth.cli.appctx import app_transaction
from oneauth.cli.common import fail, print_json
from oneauth.oauth import clients

AUTH_CHOICES = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
JWKS_HELP = "file with the client's public JWK Set (for --auth-method private_key_jwt)"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _jwks(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the JWK Set from {path}: {exc}")
    if not isinstance(value, dict):
        fail(f"{path} does not hold a JWK Set")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "clients",
        help="OAuth clients of an app",
        description="Register and manage an app's OAuth clients.",
    )
    cmds = group.add_subparsers(dest="clients_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "create",
        help="register a client (a confidential client's secret is shown once)",
        description="Register a client. Public clients use PKCE only; confidential clients "
        "get a server-generated secret, printed once and stored hashed.",
    )
    p.add_argument("--app", required=True, help="the app the client belongs to")
    p.add_argument("--name", required=True)
    p.add_argument("--confidential", action="store_true", help="a client with a secret")
    p.add_argument(
        "--grant",
        action="append",
        default=None,
        dest="grants",
        help="allowed grant: authorization_code, refresh_token, client_credentials "
        "(repeatable; default authorization_code + refresh_token)",
    )
    p.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        dest="redirect_uris",
        help="exact redirect URI (repeatable)",
    )
    p.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        default=[],
        dest="post_logout_redirect_uris",
        help="exact post-logout URI (repeatable)",
    )
    p.add_argument(
        "--scopes",
        type=_csv,
        default=None,
        help="comma-separated allowed scopes (default openid,profile,email,"
        "offline_access; add your API scopes for client_credentials)",
    )
    p.add_argument("--first-party", action="store_true", help="skip the consent page")
    p.add_argument("--auth-method", choices=AUTH_CHOICES)
    p.add_argument("--jwks-file", help=JWKS_HELP)
    p.add_argument("--access-token-ttl", type=int, help="seconds (60..3600)")
    p.add_argument("--refresh-token-ttl", type=int, help="idle lifetime in seconds")
    p.add_argument(
        "--org",
        metavar="ORG_ID",
        help="register the client for one organization of the app: its client_credentials "
        "tokens carry that org (org_id, org_slug), none while the org is suspended",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="list clients", description="List an app's clients.")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="show one client", description="Show one client.")
    p.add_argument("client_id")
    p.add_argument("--app", required=True)
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser(
        "update",
        help="change a client",
        description="Change a client; list options replace the whole list.",
    )
    p.add_argument("client_id")
    p.add_argument("--app", required=True)
    p.add_argument("--name")
    p.add_argument("--grant", action="append", dest="grants")
    p.add_argument("--redirect-uri", action="append", dest="redirect_uris")
    p.add_argument("--post-logout-redirect-uri", action="append", dest="post_logout_redirect_uris")
    p.add_argument("--scopes", type=_csv)
    p.add_argument("--first-party", action="store_true", dest="first_party", default=None)
    p.add_argument("--third-party", action="store_false", dest="first_party", help="ask consent")
    p.add_argument("--auth-method", choices=AUTH_CHOICES)
    p.add_argument("--jwks-file", help=JWKS_HELP)
    p.add_argument("--access-token-ttl", type=int, help="seconds (60..3600)")
    p.add_argument("--refresh-token-ttl", type=int, help="idle lifetime in seconds")
    p.add_argument("--disable", action="store_true", help="refuse the client everywhere")
    p.add_argument("--enable", action="store_true")
    p.add_argument("--json", action="store_true", help="(always JSON)")
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser(
        "rotate-secret",
        help="issue a new secret, expire the old ones later",
        description="Issue a new secret; older secrets keep working for "
        "--overlap seconds (0 revokes them now).",
    )
    p.add_argument("client_id")
    p.add_argument("--app", required=True)
    p.add_argument("--overlap", type=int, default=86400)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rotate_secret)

    p = cmds.add_parser(
        "delete",
        help="delete a client and its sessions",
        description="Delete a client, its secrets, sessions and tokens.",
    )
    p.add_argument("client_id")
    p.add_argument("--app", required=True)
    p.add_argument("--yes", action="store_true")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_delete)


def cmd_create(args: argparse.Namespace) -> None:
    spec = clients.new_spec(
        name=args.name,
        confidential=args.confidential,
        grant_types=args.grants,
        scopes=args.scopes,
        redirect_uris=args.redirect_uris,
        post_logout_redirect_uris=args.post_logout_redirect_uris,
        first_party=args.first_party,
        auth_method=args.auth_method,
        access_token_ttl=args.access_token_ttl,
        refresh_token_ttl=args.refresh_token_ttl,
        jwks=_jwks(args.jwks_file),
        org_id=args.org,
    )
    with app_transaction(args.app) as (conn, _, _):
        try:
            client, secret = clients.create(conn, spec)
        except clients.ClientError as exc:
            fail(str(exc))
    body = client.to_json()
    if secret is not None:
        body["client_secret"] = secret
    if args.json:
        print_json(body)
        return
    print(f"client_id:     {client.client_id}")
    if secret is not None:
        print(f"client_secret: {secret}")
        print("(the secret is shown only now; it is stored hashed)")


def cmd_list(args: argparse.Namespace) -> None:
    with app_transaction(args.app) as (conn, _, _):
        found = clients.list_all(conn)
    if args.json:
        print_json([c.to_json() for c in found])
        return
    for c in found:
        flags = ",".join(sorted(c.grant_types))
        print(f"{c.client_id:<28} {c.kind:<12} {flags:<45} {c.name}")


def cmd_show(args: argparse.Namespace) -> None:
    with app_transaction(args.app) as (conn, _, _):
        client = clients.get(conn, args.client_id)
    if client is None:
        fail(f"no client {args.client_id!r} in app {args.app!r}")
    print_json(client.to_json())


def cmd_update(args: argparse.Namespace) -> None:
    changes = {
        key: value
        for key, value in {
            "name": args.name,
            "grant_types": args.grants,
            "redirect_uris": args.redirect_uris,
            "post_logout_redirect_uris": args.post_logout_redirect_uris,
            "scopes": args.scopes,
            "first_party": args.first_party,
            "auth_method": args.auth_method,
            "access_token_ttl": args.access_token_ttl,
            "refresh_token_ttl": args.refresh_token_ttl,
            "jwks": _jwks(args.jwks_file),
        }.items()
        if value is not None
    }
    if args.disable or args.enable:
        changes["disabled"] = bool(args.disable)
    with app_transaction(args.app) as (conn, _, _):
        try:
            client = clients.update(conn, args.client_id, **changes)
        except clients.ClientError as exc:
            fail(str(exc))
    print_json(client.to_json())


def cmd_rotate_secret(args: argparse.Namespace) -> None:
    with app_transaction(args.app) as (conn, _, _):
        try:
            secret = clients.rotate_secret(conn, args.client_id, overlap_seconds=args.overlap)
        except clients.ClientError as exc:
            fail(str(exc))
    if args.json:
        print_json(
            {
                "client_id": args.client_id,
                "client_secret": secret,
                "older_secrets_expire_in": args.overlap,
            }
        )
        return
    print(f"client_secret: {secret}")
    print(f"(older secrets stop working in {args.overlap} s)")


def cmd_delete(args: argparse.Namespace) -> None:
    if not args.yes:
        fail("deleting a client ends its sessions; pass --yes to confirm")
    with app_transaction(args.app) as (conn, _, _):
        if not clients.delete(conn, args.client_id):
            fail(f"no client {args.client_id!r} in app {args.app!r}")
    if args.json:
        print_json({"client_id": args.client_id, "app_id": args.app, "deleted": True})
        return
    print(f"client {args.client_id} deleted")
