-- What the retention workers last learned of each app (oneauth.retention.worker),
-- so that a cycle does not enter every app's schema: an app is visited when the
-- statistics counter of its prunable tables moved since the last visit (rows
-- inserted: something may expire soon), when the earliest moment one of its kept
-- rows becomes prunable has come (next_due_at), or when its audit retention
-- setting changed. Written by the workers as the service's login role; app
-- roles have no access to the control schema.
CREATE TABLE retention_sweep (
    app_id      text PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    -- rows inserted into the app's prunable tables, read before the visit
    changes     bigint NOT NULL,
    -- the earliest moment a kept row becomes prunable (NULL: none until a write)
    next_due_at timestamptz,
    -- the audit_retention_days the visit applied (NULL: audit rows kept)
    audit_days  integer,
    visited_at  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
