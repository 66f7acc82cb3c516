"""``oneauth migrate``: the control schema, then every app schema."""

from __future__ import annotations

import argparse
import sys

from oneauth.apps.migrate import AppOutcome, migrate_all
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.db.roles import UnsafeRole, check_operator_role


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "migrate",
        help="apply pending SQL templates to the control schema and every app",
        description="Migrate the control schema first, then each app schema in its own "
        "transaction under an advisory lock, a bounded number at a time, then make sure "
        "the control-plane app exists (`oneauth platform init`). Safe to re-run; "
        "exits non-zero if any schema failed.",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="app schemas migrated at once (default ONEAUTH_MIGRATE_PARALLELISM)",
    )
    p.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary (no progress lines; failures in it, exit status as without)",
    )
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = load_settings()
    with ops.connect(settings.operator_url) as conn:
        try:
            check_operator_role(conn)
        except UnsafeRole as exc:
            fail(str(exc))

    def progress(n: int, total: int, outcome: AppOutcome) -> None:
        prefix = f"[{n}/{total} {outcome.app_id}]"
        if args.json:
            return  # all of it is in the summary
        if outcome.error:
            print(f"{prefix} FAILED: {outcome.error}", file=sys.stderr, flush=True)
        elif not args.quiet:
            done = ", ".join(outcome.applied) if outcome.applied else "up to date"
            print(f"{prefix} {done}", flush=True)

    try:
        summary = migrate_all(
            settings.operator_url,
            settings=settings,
            parallelism=args.parallel or settings.migrate_parallelism,
            progress=progress,
        )
    except ops.MigrationError as exc:
        fail(f"control schema: {exc}")
    platform_created: bool | None = None
    if not summary.failed:
        # The control plane is an app too; a new installation gets it here.
        from oneauth.cli.platform import run_init

        platform_created = run_init(settings).created
    if args.json:
        print_json(
            {
                "control_applied": list(summary.control_applied),
                "platform_app": None
                if platform_created is None
                else ("created" if platform_created else "up to date"),
                "apps": [
                    {"app_id": o.app_id, "applied": list(o.applied), "error": o.error}
                    for o in summary.outcomes
                ],
                "total": len(summary.outcomes),
                "migrated": len(summary.changed),
                "failed": [o.app_id for o in summary.failed],
                "seconds": round(summary.seconds, 3),
            }
        )
        if summary.failed:
            raise SystemExit(1)
        return
    control = ", ".join(summary.control_applied) or "up to date"
    print(f"control schema: {control}")
    if platform_created is not None:
        print(f"platform app: {'created' if platform_created else 'up to date'}")
    print(
        f"apps: {len(summary.outcomes)} total, {len(summary.changed)} migrated, "
        f"{len(summary.failed)} failed in {summary.seconds:.2f} s"
    )
    if summary.failed:
        raise SystemExit(1)
