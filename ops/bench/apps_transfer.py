"""Export and import time of one app with 10,000 users: ``make bench-transfer``.

A throwaway cluster (fsync off, like the test suite) with two installations (two
databases, own operator roles and role namespaces). In the first, one app with
``--users`` users (a real argon2id hash each, written with one INSERT: hashing
10,000 passwords would measure argon2, not the transfer). Then, each ``--reps``
times, the medians written to ``--out`` (bench/apps_transfer.json):

* ``export``: ``transfer.export`` (pg_dump -Fc of the schema from an exported
  snapshot, the manifest, the seal);
* ``restore``: ``transfer.import_archive`` into the second installation, same
  app_id (checks, schema from templates, pg_restore --data-only streamed as COPY,
  foreign keys re-validated, migrate, commit), then the app is deleted there so the
  next repetition restores again into a fresh database;
* ``clone``: ``import_archive --as`` in the first installation (the same plus the
  reseal of kept secrets and new signing keys).
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from oneauth.apps import lifecycle, transfer
from oneauth.apps.migrate import migrate_all
from oneauth.db import ops
from oneauth.db.bootstrap import bootstrap
from oneauth.identity.passwords import PasswordHasher
from oneauth.localpg import LocalPostgres, scratch_dir
from oneauth.settings import Settings

PASSWORD = "violet-Harbor-lantern-42"


def _installation(admin_dsn: str, label: str) -> Settings:
    made = bootstrap(
        admin_dsn,
        database=f"oneauth_xfer_{label}",
        operator_role=f"oneauth_xfer_{label}",
        operator_password=secrets.token_urlsafe(16),
        service_role=f"oneauth_xfer_{label}_svc",
        service_password=secrets.token_urlsafe(16),
    )
    migrate_all(made.operator_dsn)
    return Settings(
        env="test",
        public_url="http://bench.invalid",
        database_url=made.service_dsn,
        operator_database_url=made.operator_dsn,
    )


def _users(settings: Settings, app: Any, count: int) -> None:
    hashed = PasswordHasher().hash_sync(PASSWORD)
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        conn.execute(
            "INSERT INTO users (email, email_normalized, email_verified, password_hash)"
            " SELECT 'user' || n || '@example.com', 'user' || n || '@example.com', true, %s"
            " FROM generate_series(1, %s) n",
            (hashed, count),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/apps_transfer.json"))
    args = parser.parse_args()

    root = scratch_dir("oneauth-bench-xfer-")
    cluster = LocalPostgres(root / "data", fast=True)
    cluster.start()
    work = Path(tempfile.mkdtemp(prefix="oneauth-xfer-"))
    try:
        first = _installation(cluster.admin_dsn(), "a")
        second = _installation(cluster.admin_dsn(), "b")
        with ops.connect(first.operator_url) as conn:
            app = lifecycle.provision(conn, first, "bench-shop", "Bench shop").app
        _users(first, app, args.users)
        timings: dict[str, list[float]] = {"export": [], "restore": [], "clone": []}
        size = 0
        for rep in range(args.reps):
            out = work / f"shop-{rep}.oneauth"
            with ops.connect(first.operator_url) as conn:
                exported = transfer.export(conn, first, app.app_id, out)
            timings["export"].append(exported.seconds)
            size = out.stat().st_size
            with ops.connect(second.operator_url) as conn:
                restored = transfer.import_archive(conn, second, out)
            assert restored.rows["users"] == args.users
            timings["restore"].append(restored.seconds)
            # The restored app's id is burnt in the second installation (never reused):
            # start the next repetition from an empty database.
            with ops.connect(second.operator_url) as conn:
                lifecycle.delete(conn, app.app_id)
                conn.execute("DELETE FROM oneauth.apps WHERE app_id = %s", (app.app_id,))
            with ops.connect(first.operator_url) as conn:
                cloned = transfer.import_archive(conn, first, out, as_app=f"bench-clone-{rep}")
            assert cloned.rows["users"] == args.users
            timings["clone"].append(cloned.seconds)
        result = {
            "users": args.users,
            "reps": args.reps,
            "archive_bytes": size,
            "seconds_median": {k: round(statistics.median(v), 3) for k, v in timings.items()},
            "seconds_all": {k: [round(x, 3) for x in v] for k, v in timings.items()},
            "machine": platform.platform(),
            "fsync": "off",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
