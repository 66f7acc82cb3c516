"""``oneauth dev``: the local development loop behind ``make run``.

Without ONEAUTH_DATABASE_URL it keeps an embedded Postgres cluster under
``.data/pg`` (started from the machine's Postgres binaries), with a login role
whose password is generated once and kept in ``.data/``.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.cli.common import fail, load_settings
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.localpg import LocalPostgres, LocalPostgresError

DEV_PG_PORT = 54329
DEMO_APP = ("demo", "Demo App")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser(
        "dev", help="local development helpers (make run)", description="Local development helpers."
    )
    cmds = dev.add_subparsers(dest="dev_command", required=True, metavar="COMMAND")
    for name, func, text in (
        ("run", cmd_run, "embedded Postgres if needed, migrate, provision the demo app, serve"),
        ("db-url", cmd_db_url, "start the embedded Postgres if needed and print its URL"),
        ("stop-db", cmd_stop_db, "stop the embedded Postgres"),
    ):
        p = cmds.add_parser(name, help=text, description=text.capitalize() + ".")
        p.add_argument(
            "--data-dir",
            type=Path,
            default=Path(".data"),
            help="where the embedded cluster lives (default .data)",
        )
        p.set_defaults(func=func)


def embedded_database_url(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)  # the postgres user must reach the cluster inside
    cluster = LocalPostgres(data_dir / "pg", port=_port(data_dir / "pg"))
    try:
        cluster.start()
    except LocalPostgresError as exc:
        fail(str(exc))
    secret_file = data_dir / "dev-db-password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(24) + "\n")
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()
    return bootstrap(cluster.admin_dsn(), role="oneauth", password=password, database="oneauth")


def _port(pg_dir: Path) -> int:
    port_file = pg_dir / "oneauth.port"
    return int(port_file.read_text()) if port_file.exists() else DEV_PG_PORT


def cmd_db_url(args: argparse.Namespace) -> None:
    print(embedded_database_url(args.data_dir))


def cmd_stop_db(args: argparse.Namespace) -> None:
    pg_dir = args.data_dir / "pg"
    if (pg_dir / "PG_VERSION").exists():
        LocalPostgres(pg_dir, port=_port(pg_dir)).stop()
    print("embedded Postgres stopped")


def cmd_run(args: argparse.Namespace) -> None:
    if not os.environ.get("ONEAUTH_DATABASE_URL"):
        os.environ["ONEAUTH_DATABASE_URL"] = embedded_database_url(args.data_dir)
        print(f"embedded Postgres under {args.data_dir / 'pg'} (stop it with `make stop-db`)")
    settings = load_settings()
    summary = migrate_all(
        settings.database_url, settings=settings, parallelism=settings.migrate_parallelism
    )
    if summary.failed:
        fail(f"migration failed for: {', '.join(o.app_id for o in summary.failed)}")
    with ops.connect(settings.database_url) as conn:
        try:
            result = lifecycle.provision(conn, settings, *DEMO_APP)
        except lifecycle.AppError as exc:
            fail(str(exc))
    base = f"http://{settings.host}:{settings.port}"
    app_id = result.app.app_id
    print()
    print(f"oneauth is starting on {base}")
    print(f"  health:     {base}/healthz   readiness: {base}/readyz")
    print(f"  demo app:   {base}/apps/{app_id}/v1/app")
    print(f"  issuer:     {settings.issuer_for(app_id)}")
    print(f"  discovery:  {settings.issuer_for(app_id)}/.well-known/openid-configuration")
    print(f"  recovery:   {settings.issuer_for(app_id)}/recover")
    for key, value in result.extra.items():
        print(f"  {key}: {value}")
    print("Ctrl-C stops the service; the data stays for the next `make run`.")
    print(flush=True)
    from oneauth.cli.serve import serve

    serve(settings.host, settings.port, workers=1)
