"""``oneauth dev``: the local development loop behind ``make run``.

Without ONEAUTH_DATABASE_URL it keeps an embedded Postgres cluster under
``.data/pg`` (started from the machine's Postgres binaries) on a port of its
own (ONEAUTH_DEV_DB_PORT, else a free one picked at creation and remembered),
so two checkouts on one machine run side by side. ``oneauth db bootstrap`` makes
its operator role ``oneauth`` and service role ``oneauth_service`` (D1), with
passwords generated once and kept in ``.data/``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.cli.common import fail, load_settings, print_json
from oneauth.db import ops
from oneauth.db.bootstrap import BootstrapError, Installation, bootstrap
from oneauth.localpg import LocalPostgres, LocalPostgresError
from oneauth.settings import Settings, SettingsError

DEMO_APP = ("demo", "Demo App")
DEV_OPERATOR_ROLE = "oneauth"  # the single role of checkouts from before D1
DEV_SERVICE_ROLE = "oneauth_service"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser(
        "dev", help="local development helpers (make run)", description="Local development helpers."
    )
    cmds = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    for name, func, text in (
        ("run", cmd_run, "embedded Postgres if needed, migrate, provision the demo app, serve"),
        ("db-url", cmd_db_url, "start the embedded Postgres if needed and print its service URL"),
        ("stop-db", cmd_stop_db, "stop the embedded Postgres"),
    ):
        p = cmds.add_parser(name, help=text, description=text.capitalize() + ".")
        p.add_argument(
            "--data-dir",
            type=Path,
            default=Path(".data"),
            help="where the embedded cluster lives (default .data)",
        )
        if name == "db-url":
            p.add_argument(
                "--operator",
                action="store_true",
                help="print the operator role's URL (provisioning, migrations) instead",
            )
        if name != "run":
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)


def embedded_database(data_dir: Path, *, port: int = 0) -> Installation:
    """Start the embedded cluster if needed (saying so on stderr); bootstrap; both URLs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # the postgres user must reach the cluster inside
    cluster = LocalPostgres(data_dir / "pg", port=port or None)
    where = data_dir / "pg"
    try:
        if cluster.initialized() and cluster.running():
            print(f"note: using the embedded development database under {where}", file=sys.stderr)
        else:
            print(
                f"note: starting the embedded development database under {where} on port "
                f"{cluster.port} (stop it with `make stop-db`)",
                file=sys.stderr,
            )
        cluster.start()  # refuses to pretend a running cluster moved to another port
    except LocalPostgresError as exc:
        fail(str(exc))
    try:
        return bootstrap(
            cluster.admin_dsn(),
            database="oneauth",
            operator_role=DEV_OPERATOR_ROLE,
            operator_password=_secret(data_dir / "dev-db-password"),
            service_role=DEV_SERVICE_ROLE,
            service_password=_secret(data_dir / "dev-db-service-password"),
        )
    except BootstrapError as exc:
        fail(str(exc))


def _secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_db_url(args: argparse.Namespace) -> None:
    urls = embedded_database(args.data_dir, port=load_settings_quietly().dev_db_port)
    if args.json:
        print_json(
            {
                "ONEAUTH_DATABASE_URL": urls.service_dsn,
                "ONEAUTH_OPERATOR_DATABASE_URL": urls.operator_dsn,
            }
        )
        return
    print(urls.operator_dsn if args.operator else urls.service_dsn)


def load_settings_quietly() -> Settings:
    """The environment's settings, without load_settings' own use of the embedded cluster."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(f"configuration: {exc}")


def cmd_stop_db(args: argparse.Namespace) -> None:
    pg_dir = args.data_dir / "pg"
    existed = (pg_dir / "PG_VERSION").exists()
    if existed:
        LocalPostgres(pg_dir).stop()
    if args.json:
        print_json({"data_dir": str(pg_dir), "cluster": existed, "stopped": True})
        return
    print("embedded Postgres stopped")


PORT_HINT = "another port: ONEAUTH_PORT=8001 make run"


def cmd_run(args: argparse.Namespace) -> None:
    # Said before the database starts and the migrations run (seconds on a first run), so
    # whoever typed `make run` knows at once where to look and how to move it.
    early = load_settings_quietly()
    print(
        f"oneauth: preparing {early.public_url}/ (database, migrations, demo app; {PORT_HINT})",
        flush=True,
    )
    settings = load_settings()
    if not (os.environ.get("ONEAUTH_DATABASE_URL") or settings.operator_database_url):
        urls = embedded_database(args.data_dir, port=settings.dev_db_port)
        settings = replace(
            settings, database_url=urls.service_dsn, operator_database_url=urls.operator_dsn
        )
        print(f"embedded Postgres under {args.data_dir / 'pg'} (stop it with `make stop-db`)")
    summary = migrate_all(
        settings.operator_url, settings=settings, parallelism=settings.migrate_parallelism
    )
    if summary.failed:
        fail(f"migration failed for: {', '.join(o.app_id for o in summary.failed)}")
    from oneauth.cli.platform import run_init

    platform = run_init(settings)
    with ops.connect(settings.operator_url) as conn:
        try:
            result = lifecycle.provision(conn, settings, *DEMO_APP)
        except lifecycle.AppError as exc:
            fail(str(exc))
    base = f"http://{settings.host}:{settings.port}"
    app_id = result.app.app_id
    print()
    print(f"oneauth is starting on {base}  ({PORT_HINT})")
    print(f"  open:       {base}/console/ in a browser (the admin console)")
    print(f"  health:     {base}/healthz   readiness: {base}/readyz")
    print(f"  demo app:   {base}/apps/{app_id}/v1/app")
    print(f"  issuer:     {settings.issuer_for(app_id)}")
    print(f"  discovery:  {settings.issuer_for(app_id)}/.well-known/openid-configuration")
    print(f"  recovery:   {settings.issuer_for(app_id)}/recover")
    print(f"  platform:   {settings.issuer_for(platform.app.app_id)} (the platform API's issuer)")
    print(f"  console:    {base}/console/  (first an operator of every app:")
    print("              `make operator EMAIL=you@example.com`, it asks for a password)")
    for key, value in result.extra.items():
        print(f"  {key}: {value}")
    print("Ctrl-C stops the service; the data stays for the next `make run`.")
    print(flush=True)
    from oneauth.cli.serve import serve

    # The platform API's writes run here too (the runner needs the operator URL).
    serve(replace(settings, platform_worker=True), workers=1)
