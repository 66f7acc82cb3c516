-- Which retention worker runs the cycle now (oneauth.retention.state, R3): one
-- row, a lease taken and renewed with single statements. A session-level
-- advisory lock did this before, but through PgBouncer in transaction mode each
-- statement may run on another server connection, so the lock stayed behind on
-- one of them (held for ever, re-entrant for whoever landed there next). A
-- lease works through any pooler; a worker that dies leaves it to expire.
CREATE TABLE retention_leader (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    holder    text NOT NULL,
    until     timestamptz NOT NULL
);
