"""``--statements``: plans and Postgres time per request from pg_stat_statements."""

from __future__ import annotations

import psycopg
from ops.bench import cluster, pgstats
from ops.bench.procstat import backend_pids
from ops.bench.report import statement_rows


def test_statements_per_request_sums_over_app_roles_and_ranks_by_time() -> None:
    before = ({"SELECT 1": (10.0, 10.0, 1.0, 1.0)}, 3)
    after = (
        {
            "SELECT 1": (110.0, 20.0, 3.0, 5.0),  # 100 calls, 10 plans, 2 + 4 ms
            "UPDATE t SET x = $1": (50.0, 50.0, 40.0, 10.0),  # new since: 50 ms
            "SELECT idle": (7.0, 7.0, 1.0, 1.0),  # unchanged: left out
        },
        3,
    )
    before[0]["SELECT idle"] = (7.0, 7.0, 1.0, 1.0)
    got = pgstats.statements_per_request(before, after, 50)
    assert got["statements"] == 3.0  # (100 + 50) / 50
    assert got["plans"] == 1.2  # (10 + 50) / 50
    assert got["plan_ms"] == 0.84  # (2 + 40) / 50
    assert got["exec_ms"] == 0.28  # (4 + 10) / 50
    assert got["evicted"] == 0
    assert [t["statement"] for t in got["top"]] == ["UPDATE t SET x = $1", "SELECT 1"]
    assert got["top"][0]["plans"] == 1.0
    assert pgstats.statements_per_request(before, after, 0) == {}

    doc = {
        "scenarios": [{"scenario": "refresh", "apps": 1000, "db_per_request": {"statements": got}}]
    }
    rows = statement_rows(doc)
    assert rows[2].startswith("| refresh | 1,000 | 3.00 | 1.20 | 0.840 | 0.280 |")
    assert "UPDATE t SET x" in rows[2]
    assert (
        statement_rows({"scenarios": [{"scenario": "me", "apps": 1, "db_per_request": {}}]}) == []
    )


def test_loading_counts_plans_per_role_and_unloading_restores_the_cluster() -> None:
    cl = cluster.start(None, durable=False, statements=True)
    try:
        assert cl.statements
        # The memory figures read the backends of the role the service logs in as.
        with psycopg.connect(cl.service_dsn) as service:
            pid = service.info.backend_pid
            assert pid in backend_pids(cl.postmaster or 0, cluster.SERVICE_ROLE)
            assert pid not in backend_pids(cl.postmaster or 0, cluster.ROLE)
        db = cl.pg.admin_dsn(cluster.DATABASE)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("CREATE ROLE app_a; CREATE ROLE app_b")
            conn.execute("CREATE TABLE t (id int PRIMARY KEY); GRANT SELECT ON t TO app_a, app_b")
        before = pgstats.statements_snapshot(db)
        with psycopg.connect(db, autocommit=True) as conn:
            for role in ("app_a", "app_b"):
                conn.execute(f"SET ROLE {role}")
                for i in range(3):
                    # Simple protocol with literals: each call is planned.
                    conn.execute(f"SELECT id FROM t WHERE id = {i}", prepare=False)
            conn.execute("RESET ROLE")
        after = pgstats.statements_snapshot(db)
        got = pgstats.statements_per_request(before, after, 6)
        lookups = [t for t in got["top"] if t["statement"].startswith("SELECT id FROM t")]
        assert len(lookups) == 1  # one text, summed over both roles
        assert lookups[0]["calls"] == 1.0
        assert lookups[0]["plans"] == 1.0
        # The admin's own statements (the snapshots themselves) are not counted.
        assert all("pg_stat_statements" not in t["statement"] for t in got["top"])

        assert not cluster._statements(cl.pg, cl.admin_dsn, False)
        with psycopg.connect(cl.admin_dsn, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        assert row is not None
        assert "pg_stat_statements" not in row[0]
    finally:
        cl.close()
