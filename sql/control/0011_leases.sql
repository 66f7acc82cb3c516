-- Named leases: at most one holder of each job in the whole installation at a
-- time (oneauth.db.lease), taken, renewed and released with single statements,
-- so they work through PgBouncer in transaction mode (sql/control/0010). The
-- audit sealer ("audit_sealer") and the retention cycle ("retention") hold one.
-- retention_leader (0010) is no longer written; a later migration drops it,
-- once no worker of an earlier release can run beside these.
CREATE TABLE leases (
    name   text PRIMARY KEY,
    holder text NOT NULL,
    until  timestamptz NOT NULL
);
