"""``oneauth audit verify|checkpoints|export``: the audit chain of one app (A2).

``verify`` exits 0 when the chain is intact, 1 naming the first bad row
otherwise (changed, deleted, inserted, reordered, rewritten, or a checkpoint
that does not verify). ``--checkpoints FILE`` also checks against a copy of the
checkpoints kept outside the database (the output of ``checkpoints --json``),
which detects the newest checkpoints being deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from oneauth.apps.models import AppRecord
from oneauth.cli.appctx import _checked_app, async_app_transaction
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify and export an app's audit log (hash chain)")
    cmds = p.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")

    v = cmds.add_parser("verify", help="check the hash chain and its signed checkpoints")
    v.add_argument("--app", required=True)
    v.add_argument("--checkpoints", type=Path, help="a kept copy (checkpoints --json output)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)

    c = cmds.add_parser("checkpoints", help="list (export) the signed checkpoints")
    c.add_argument("--app", required=True)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_checkpoints)

    e = cmds.add_parser("export", help="the audit rows with their chain entries as NDJSON")
    e.add_argument("--app", required=True)
    e.add_argument("--from", dest="since", type=_timestamp, help="ISO 8601, inclusive")
    e.add_argument("--to", dest="until", type=_timestamp, help="ISO 8601, exclusive")
    e.set_defaults(func=cmd_export)


def _timestamp(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {raw!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{raw!r} needs a UTC offset (e.g. Z or +00:00)")
    return value


def _stored(settings: Settings, app_id: str) -> tuple[AppRecord, list[dict[str, Any]]]:
    from oneauth.auditchain.checkpoints import COLUMNS, export_row

    with ops.connect(settings.operator_url) as conn:
        app = _checked_app(conn, app_id)
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                f"SELECT {COLUMNS} FROM oneauth.audit_checkpoints WHERE app_id = %s ORDER BY seq",
                (app_id,),
            ).fetchall()
    return app, [export_row(r) for r in rows]


def cmd_checkpoints(args: argparse.Namespace) -> None:
    settings = load_settings()
    _, rows = _stored(settings, args.app)
    if args.json:
        print_json(rows)
        return
    for r in rows:
        print(f"#{r['seq']} {r['kind']:8} row {r['audit_id']} {r['row_hash']} {r['created_at']}")


def cmd_verify(args: argparse.Namespace) -> None:
    from oneauth.auditchain.verify import verify_chain
    from oneauth.secretbox import SecretBox

    settings = load_settings()
    _stored(settings, args.app)  # the app exists (else a clear error, before any work)
    kept = None
    if args.checkpoints is not None:
        try:
            kept = json.loads(args.checkpoints.read_text())
            assert isinstance(kept, list)
        except (OSError, ValueError, AssertionError):
            fail(f"{args.checkpoints}: not a checkpoints export (a JSON list)", 2)

    async def load() -> list[dict[str, Any]]:
        return _stored(settings, args.app)[1]

    async def main() -> Any:
        async with async_app_transaction(args.app) as (conn, app, _):
            return await verify_chain(
                conn,
                app_id=app.app_id,
                load_checkpoints=load,
                box=SecretBox.from_config(settings.master_key),
                kept_checkpoints=kept,
            )

    report = asyncio.run(main())
    if args.json:
        print_json(report.as_dict())
    elif report.ok:
        print(
            f"audit chain of {args.app} intact: {report.sealed} sealed rows, "
            f"{report.unsealed} not sealed yet, {report.checkpoints_matched}/"
            f"{report.checkpoints} checkpoints match"
            + (f", pruned through row {report.pruned_through}" if report.pruned_through else "")
        )
    if not report.ok:
        first = report.problems[0]
        print(f"audit chain of {args.app} NOT intact: {first.message}", file=sys.stderr)
        for more in report.problems[1:]:
            print(f"  also: {more.message}", file=sys.stderr)
        raise SystemExit(1)


def cmd_export(args: argparse.Namespace) -> None:
    from oneauth.auditchain.verify import export_ndjson

    async def main() -> None:
        out = sys.stdout.buffer
        async with async_app_transaction(args.app) as (conn, _, _):
            async for chunk in export_ndjson(conn, since=args.since, until=args.until):
                out.write(chunk)
        out.flush()

    asyncio.run(main())
