"""``oneauth apps``: provision, list, show, configure, suspend, resume, delete, export, import."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from oneauth.apps import lifecycle, policy, receipts
from oneauth.apps.dek import KeyRing
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId
from oneauth.db.roles import UnsafeRole, check_operator_role
from oneauth.settings import Settings, issuer_url


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

    p = cmds.add_parser(
        "configure",
        help="change an app's settings",
        description="Change per-app settings (passwordless, require_verified_email, "
        "branding, lifetimes, signing_alg, ...; `apps show` lists them with their "
        'effective values). Values are JSON when they parse (true, 600, ["a"]), '
        "else strings. Validated as a whole, audited in the app's log, and in effect "
        "on every running process as soon as the registry's change notice arrives.",
    )
    p.add_argument("app_id")
    p.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a setting (repeatable)",
    )
    p.add_argument(
        "--unset",
        action="append",
        default=[],
        metavar="KEY",
        help="remove a setting: back to its default (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the app as JSON")
    p.set_defaults(func=cmd_configure)

    for name, status, text in (
        ("suspend", "suspended", "refuse all traffic for an app"),
        ("resume", "active", "serve a suspended app again"),
    ):
        p = cmds.add_parser(name, help=text, description=text.capitalize() + ".")
        p.add_argument("app_id")
        p.add_argument("--json", action="store_true", help="print the app as JSON")
        p.set_defaults(func=cmd_set_status, status=status)

    p = cmds.add_parser(
        "delete",
        help="drop an app's schema and role (irreversible)",
        description="Drop the app's schema (all users, keys and logs) and role; "
        "the registry keeps a tombstone so the app_id is never reused.",
    )
    p.add_argument("app_id")
    p.add_argument("--yes", action="store_true", help="confirm: this destroys the app's data")
    p.add_argument("--json", action="store_true", help="print the receipt's claims as JSON too")
    p.set_defaults(func=cmd_delete)

    p = cmds.add_parser(
        "export",
        help="write one app to an archive (pg_dump from one snapshot)",
        description="Write the app's schema (pg_dump -Fc from one exported snapshot), "
        "registry row, wrapped data key and audit checkpoints to one archive with a "
        "manifest of checksums, sealed with the master key. Other apps are not touched.",
    )
    p.add_argument("app_id")
    p.add_argument("--out", required=True, type=Path, help="archive to write (must not exist)")
    p.add_argument("--pg-bin", type=Path, help="directory of pg_dump (default: by server version)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_export)

    p = cmds.add_parser(
        "import",
        help="restore an app from an archive, or clone it under a new app_id",
        description="Restore the archived app into an empty slot (same app_id, not "
        "registered here), over itself with --replace (suspended during the restore), "
        "or as a clone with --as NEW_ID (new schema, role, issuer and signing keys; "
        "users and configuration kept, tokens and sessions not). Checksums, seal and "
        "schema version are checked first; the archive's SQL is never run.",
    )
    p.add_argument("file", type=Path)
    p.add_argument("--as", dest="as_app", metavar="NEW_ID", help="clone under this new app_id")
    p.add_argument("--name", help="display name of the clone (default: the original's)")
    p.add_argument("--replace", action="store_true", help="restore over the existing app")
    p.add_argument("--pg-bin", type=Path, help="directory of pg_restore (default: by version)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_import)

    p = cmds.add_parser(
        "verify-deleted",
        help="check a deletion receipt against the database",
        description="Check a deletion receipt (the JWS printed by `apps delete`): its "
        "signature by the platform's receipt key, then that the app's schema, role and "
        "data-encryption key are gone and the registry says deleted. Exit status 0 only "
        "if every check passes.",
    )
    p.add_argument("receipt", help="the receipt (a JWS), a file holding it, or - for stdin")
    p.add_argument(
        "--key",
        metavar="FILE",
        help="verify with this public JWK (from `apps receipt-key`) instead of the "
        "database's receipt keys",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_verify_deleted)

    p = cmds.add_parser(
        "receipt-key",
        help="print the public key that signs deletion receipts",
        description="Print the platform's receipt-signing public keys (JWK set), "
        "creating the key on first use. Keep a copy apart from the database.",
    )
    p.add_argument("--json", action="store_true", help="accepted: the key set is always JSON")
    p.set_defaults(func=cmd_receipt_key)

    p = cmds.add_parser(
        "receipt",
        help="print the deletion receipt of a deleted app again",
        description="Print the deletion receipt stored when the app was deleted.",
    )
    p.add_argument("app_id")
    p.add_argument("--json", action="store_true", help="print {app_id, receipt} as JSON")
    p.set_defaults(func=cmd_receipt)

    p = cmds.add_parser(
        "reseal",
        help="move an app's master-key-sealed secrets to its data key",
        description="Reseal every secret of the app's schema that is still sealed with "
        "the master key (written before per-app data keys) with the app's "
        "data-encryption key, so that deleting the app makes it unreadable. Ephemeral "
        "values (flows, outbox links) are left to expire. Idempotent.",
    )
    p.add_argument("app_id", nargs="?")
    p.add_argument("--all", action="store_true", dest="all_apps", help="every app")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_reseal)


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
        print_json([a.to_json(issuer_url(public_url, a.app_id)) for a in apps])
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
    _print_app(app, public_url, as_json=args.json)


def _show_body(app: Any, public_url: str) -> dict[str, Any]:
    body: dict[str, Any] = app.to_json(issuer_url(public_url, app.app_id))
    try:
        body["effective_settings"] = policy.effective(app.settings)
    except policy.PolicyError as exc:  # edited by hand: the service runs on defaults
        body["effective_settings"] = policy.effective({})
        body["settings_error"] = str(exc)
    return body


def _print_app(app: Any, public_url: str, *, as_json: bool) -> None:
    body = _show_body(app, public_url)
    if as_json:
        print_json(body)
        return
    effective = body.pop("effective_settings")
    stored = body.pop("settings")
    for key, value in body.items():
        print(f"{key + ':':<16} {value}")
    print("settings:        (* = set for this app, others are defaults)")
    for key, value in effective.items():
        mark = "*" if key in stored else " "
        print(f"  {mark} {key + ':':<24} {json.dumps(value)}")


def cmd_configure(args: argparse.Namespace) -> None:
    set_values: dict[str, Any] = {}
    for item in args.set_values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: expected KEY=VALUE")
        if key.strip() in set_values:
            fail(f"--set {key.strip()}: given twice")
        set_values[key.strip()] = lifecycle.parse_setting_value(raw)
    if not set_values and not args.unset:
        fail("nothing to change: pass --set KEY=VALUE or --unset KEY")
    conn, public_url = _conn()
    with conn:
        try:
            result = lifecycle.configure(conn, args.app_id, set_values=set_values, unset=args.unset)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    if args.json:
        _print_app(result.app, public_url, as_json=True)
        return
    if not result.changes:
        print(f"app {result.app.app_id}: no change")
        return
    for key, (old, new) in result.changes.items():
        shown_old = "(default)" if old is None else json.dumps(old)
        shown_new = "(default)" if new is None else json.dumps(new)
        print(f"{result.app.app_id}: {key}: {shown_old} -> {shown_new}")


def cmd_set_status(args: argparse.Namespace) -> None:
    conn, public_url = _conn()
    with conn:
        try:
            app = lifecycle.set_status(conn, args.app_id, args.status)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    if args.json:
        _print_app(app, public_url, as_json=True)
        return
    print(f"app {app.app_id} is {app.status}")


def cmd_delete(args: argparse.Namespace) -> None:
    if not args.yes:
        fail("deleting an app destroys all its data and keys; pass --yes to confirm")
    settings = load_settings()
    conn, _ = _conn(settings)
    with conn:
        try:
            result = lifecycle.delete_app(conn, args.app_id, settings=settings)
        except (InvalidAppId, lifecycle.AppError) as exc:
            fail(str(exc))
    if result.receipt is None:
        print(
            f"app {args.app_id} was already deleted; its receipt: `oneauth apps receipt "
            f"{args.app_id}`",
            file=sys.stderr,
        )
        return
    if args.json:
        claims = receipts.verify(result.receipt, _receipt_keys(settings))
        print_json(
            {
                "app_id": args.app_id,
                "status": "deleted",
                "tombstone": True,
                "dek_id": result.dek_id,
                "receipt": result.receipt,
                "claims": claims,
            }
        )
        return
    print(
        f"app {args.app_id} deleted (schema and role dropped, data key "
        f"{result.dek_id or '(none)'} destroyed; tombstone kept). Deletion receipt "
        "(check it with `oneauth apps verify-deleted`):",
        file=sys.stderr,
    )
    print(result.receipt)


def _receipt_keys(settings: Settings) -> list[dict[str, Any]]:
    conn, _ = _conn(settings)
    with conn:
        return receipts.public_keys(conn)


_JWS_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _read_receipt(value: str) -> str:
    if value == "-":
        return sys.stdin.read().strip()
    if _JWS_RE.fullmatch(value.strip()):
        return value.strip()
    try:
        return Path(value).read_text().strip()
    except OSError as exc:
        fail(f"{value}: {exc.strerror or exc}")


def cmd_verify_deleted(args: argparse.Namespace) -> None:
    receipt = _read_receipt(args.receipt)
    settings = load_settings()
    conn, _ = _conn(settings)
    with conn:
        if args.key:
            try:
                key = json.loads(Path(args.key).read_text())
            except (OSError, ValueError) as exc:
                fail(f"{args.key}: not a JWK file ({exc})")
            keys = key.get("keys", [key]) if isinstance(key, dict) else []
        else:
            keys = receipts.public_keys(conn)
        try:
            claims = receipts.verify(receipt, keys)
        except receipts.ReceiptError as exc:
            if args.json:
                print_json({"ok": False, "checks": {"signature": False}, "error": str(exc)})
            else:
                print(f"INVALID receipt: {exc}")
            raise SystemExit(1) from None
        check = receipts.check_deleted(conn, claims)
    if args.json:
        print_json({"ok": check.ok, "checks": check.checks, "claims": claims})
    else:
        for name, passed in check.checks.items():
            print(f"{'ok ' if passed else 'FAIL'} {name}")
        verdict = "verified" if check.ok else "NOT verified"
        print(f"app {claims.get('app_id')} deletion at {claims.get('deleted_at')}: {verdict}")
    if not check.ok:
        raise SystemExit(1)


def cmd_receipt_key(args: argparse.Namespace) -> None:
    settings = load_settings()
    conn, _ = _conn(settings)
    with conn:
        keys = receipts.public_keys(conn, KeyRing.from_config(settings.master_key))
    print_json({"keys": keys})


def cmd_receipt(args: argparse.Namespace) -> None:
    conn, _ = _conn()
    with conn:
        try:
            lifecycle.get(conn, args.app_id)  # validates the id
        except InvalidAppId as exc:
            fail(str(exc))
        receipt = receipts.stored(conn, args.app_id)
    if receipt is None:
        fail(f"no deletion receipt for {args.app_id!r} (not deleted, or deleted before receipts)")
    if args.json:
        print_json({"app_id": args.app_id, "receipt": receipt})
        return
    print(receipt)


def cmd_reseal(args: argparse.Namespace) -> None:
    from oneauth.secretbox import SecretBoxError

    if bool(args.app_id) == bool(args.all_apps):
        fail("name one app, or pass --all")
    settings = load_settings()
    conn, _ = _conn(settings)
    reports: list[dict[str, Any]] = []
    with conn:
        try:
            targets = (
                [a.app_id for a in lifecycle.list_apps(conn)] if args.all_apps else [args.app_id]
            )
        except InvalidAppId as exc:
            fail(str(exc))
        for app_id in targets:
            # One transaction per app: a value that does not open (copied in
            # from elsewhere, or tampered with) stops that app, not the others.
            try:
                reports.append(lifecycle.reseal_app(conn, settings, app_id).to_json())
            except (InvalidAppId, lifecycle.AppError, SecretBoxError) as exc:
                reports.append({"dst_app": app_id, "error": str(exc)})
    failed = [r for r in reports if "error" in r]
    if args.json:
        print_json(reports)
    else:
        for report in reports:
            if "error" in report:
                print(f"{report['dst_app']}: FAILED: {report['error']}", file=sys.stderr)
                continue
            moved = sum(report["resealed"].values())
            kept = sum(report["current"].values())
            print(f"{report['dst_app']}: resealed {moved} value(s); {kept} already under its key")
    if failed:
        raise SystemExit(1)


def cmd_export(args: argparse.Namespace) -> None:
    from oneauth.apps import transfer
    from oneauth.db.pgtools import PgToolError

    settings = load_settings()
    conn, _ = _conn(settings)
    with conn:
        try:
            result = transfer.export(conn, settings, args.app_id, args.out, pg_bin=args.pg_bin)
        except (InvalidAppId, lifecycle.AppError, PgToolError) as exc:
            fail(str(exc))
    if args.json:
        print_json({**result.manifest, "path": str(result.path), "seconds": result.seconds})
        return
    size = sum(int(m["size"]) for m in result.manifest["members"].values())
    print(
        f"exported app {args.app_id} (schema version {result.manifest['schema_version']}) "
        f"to {result.path}: {size / 1e6:.1f} MB in {result.seconds:.2f} s"
    )


def cmd_import(args: argparse.Namespace) -> None:
    from oneauth.apps import transfer
    from oneauth.apps.archive import ArchiveError
    from oneauth.db.pgtools import PgToolError

    settings = load_settings()
    conn, public_url = _conn(settings)
    with conn:
        try:
            result = transfer.import_archive(
                conn,
                settings,
                args.file,
                as_app=args.as_app,
                replace=args.replace,
                display_name=args.name,
                pg_bin=args.pg_bin,
            )
        except (InvalidAppId, lifecycle.AppError, ArchiveError, PgToolError) as exc:
            fail(str(exc))
    issuer = issuer_url(public_url, result.app.app_id)
    if args.json:
        body = result.app.to_json(issuer)
        body.update(
            mode=result.mode,
            source_app_id=result.source_app_id,
            rows=result.rows,
            migrations_applied=result.applied,
            seconds=result.seconds,
        )
        print_json(body)
        return
    what = {"restore": "restored", "replace": "restored over itself", "clone": "cloned"}
    print(
        f"{what[result.mode]} app {result.source_app_id} as {result.app.app_id} "
        f"({sum(result.rows.values())} rows, {result.seconds:.2f} s); it is {result.app.status}"
    )
    print(f"  issuer:  {issuer}")
    for name in result.applied:
        print(f"  migrated: {name}")
