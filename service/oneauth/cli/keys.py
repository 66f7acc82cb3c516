"""``oneauth keys``: list and rotate an app's signing keys; make a master key."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

import asyncpg

from oneauth.apps.dek import KeyRing
from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import run_in_app
from oneauth.cli.common import fail, print_json
from oneauth.secretbox import generate_master_key
from oneauth.settings import Settings
from oneauth.tokens import keystore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="signing keys of an app", description="Signing keys.")
    cmds = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    p = cmds.add_parser(
        "list",
        help="list an app's keys and their states",
        description="List an app's signing keys (no private parts).",
    )
    p.add_argument("app_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser(
        "rotate",
        help="promote the published next key; publish a new next key",
        description="Normal rotation: the next key (published at least the JWKS cache time "
        "ago) starts signing, the active key retires but stays published until every token "
        "it signed has expired, and a new next key is published. --emergency revokes the "
        "active key at once: it is unpublished and every token it signed is refused. "
        "--emergency --all also revokes the next and the retired keys (every key the app "
        "has) and signs with a freshly generated key at once. Every rotation is audited.",
    )
    p.add_argument("app_id")
    p.add_argument(
        "--emergency", action="store_true", help="revoke the active key now (suspected compromise)"
    )
    p.add_argument(
        "--all",
        action="store_true",
        dest="revoke_all",
        help="with --emergency: revoke every key, next and retired too; a new key signs at once",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="promote a next key even if it was published very recently",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rotate)

    p = cmds.add_parser(
        "rewrap",
        help="rewrap every app's data key under the current master key",
        description="Master-key rotation: put the new key first in ONEAUTH_MASTER_KEY "
        "(new:KEY,old:KEY), run this, then drop the old key. Every app's data-encryption "
        "key (and the receipt-signing key) is rewrapped in the control schema only; no "
        "app schema is entered or changed. Batched and resumable.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rewrap)

    p = cmds.add_parser(
        "new-master-key",
        help="print a new random ONEAUTH_MASTER_KEY",
        description="Print a new random 256-bit master key (base64url).",
    )
    p.set_defaults(func=cmd_new_master_key)


def cmd_list(args: argparse.Namespace) -> None:
    async def work(conn: asyncpg.Connection, app: AppRecord, settings: Settings) -> Any:
        return await keystore.list_keys(conn)

    rows = run_in_app(args.app_id, work)
    if args.json:
        print_json(rows)
        return
    print(f"{'KID':<45} {'ALG':<6} {'STATE':<8} CREATED")
    for row in rows:
        print(
            f"{row['kid']:<45} {row['alg']:<6} {row['state']:<8} {row['created_at']:%Y-%m-%d %H:%M}"
        )


def cmd_rotate(args: argparse.Namespace) -> None:
    if args.revoke_all and not args.emergency:
        fail("--all revokes every key: it needs --emergency")

    async def work(
        conn: asyncpg.Connection, app: AppRecord, settings: Settings
    ) -> keystore.RotationReport:
        return await keystore.rotate(
            conn,
            app,
            KeyRing.with_apps(settings.master_key, app),
            actor_type="operator",
            actor_id=_operator(),
            emergency=args.emergency,
            force=args.force,
            revoke_all=args.revoke_all,
        )

    try:
        report = run_in_app(args.app_id, work)
    except keystore.RotationRefused as exc:
        fail(str(exc))
    if args.emergency:
        print(
            f"warning: emergency rotation of {args.app_id}: revoked {len(report.revoked)} key(s); "
            "oneauth refuses their tokens now, external verifiers at their next JWKS fetch",
            file=sys.stderr,
        )
    if args.json:
        print_json(report.__dict__)
        return
    for label, kids in report.__dict__.items():
        for kid in kids:
            print(f"{label:<10} {kid}")


def _operator() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return None


def cmd_rewrap(args: argparse.Namespace) -> None:
    from oneauth.apps import dek
    from oneauth.cli.common import load_settings
    from oneauth.db import ops
    from oneauth.db.roles import UnsafeRole, check_operator_role

    settings = load_settings()
    with ops.connect(settings.operator_url) as conn:
        try:
            check_operator_role(conn)
        except UnsafeRole as exc:
            fail(str(exc))
        report = dek.rewrap_all(conn, KeyRing.from_config(settings.master_key))
    if args.json:
        print_json(report.__dict__)
        return
    print(
        f"rewrapped {report.rewrapped} app data key(s) under master key "
        f"{report.master_key_id}; {report.unchanged} already were"
    )


def cmd_new_master_key(args: argparse.Namespace) -> None:
    print(generate_master_key())
