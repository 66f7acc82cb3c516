"""``oneauth keys``: list and rotate an app's signing keys; make a master key."""

from __future__ import annotations

import argparse
import getpass
import sys

from oneauth import audit
from oneauth.cli.appctx import app_transaction
from oneauth.cli.common import fail, print_json
from oneauth.secretbox import SecretBox, generate_master_key
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
        "new-master-key",
        help="print a new random ONEAUTH_MASTER_KEY",
        description="Print a new random 256-bit master key (base64url).",
    )
    p.set_defaults(func=cmd_new_master_key)


def cmd_list(args: argparse.Namespace) -> None:
    with app_transaction(args.app_id) as (conn, _, _):
        rows = keystore.list_keys(conn)
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
    with app_transaction(args.app_id) as (conn, app, settings):
        box = SecretBox.from_config(settings.master_key)
        try:
            report = keystore.rotate(
                conn,
                app,
                box,
                emergency=args.emergency,
                force=args.force,
                revoke_all=args.revoke_all,
            )
        except keystore.RotationRefused as exc:
            fail(str(exc))
        mode = "emergency_all" if args.revoke_all else "emergency" if args.emergency else "normal"
        # Audited in the app's log; an emergency rotation is also a security
        # event in the log stream (audit.SECURITY_EVENTS).
        audit.record_sync(
            conn,
            "keys.emergency_rotation" if args.emergency else "keys.rotate",
            "success",
            audit.SYSTEM,
            app_id=app.app_id,
            actor_type="operator",
            actor_id=_operator(),
            target_type="app",
            target_id=app.app_id,
            details={"mode": mode, **{k: list(v) for k, v in report.__dict__.items()}},
        )
        conn.execute("SELECT pg_notify(%s, %s)", (keystore.CHANNEL, app.app_id))
    if args.emergency:
        print(
            f"warning: emergency rotation of {app.app_id}: revoked {len(report.revoked)} key(s); "
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


def cmd_new_master_key(args: argparse.Namespace) -> None:
    print(generate_master_key())
