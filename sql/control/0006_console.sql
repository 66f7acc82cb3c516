-- The admin console (issue 15): its sign-ins and each operator's recent apps.
-- Written by the service's login role (oneauth.db.roles.SERVICE_PRIVILEGES);
-- app roles have no access to the control schema.
--
-- A console sign-in. The browser holds only an opaque 256-bit token in an
-- HttpOnly cookie scoped to /console; the row holds its SHA-256, so a copy of
-- this table signs nobody in. The operator's platform tokens (ID, access and
-- refresh token of the reserved platform app) are sealed with the master key.
CREATE TABLE console_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    operator_sub    uuid NOT NULL,
    operator_email  text NOT NULL CHECK (length(operator_email) <= 320),
    tokens_sealed   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    -- absolute lifetime; the idle timeout is checked against last_used_at
    expires_at      timestamptz NOT NULL
);
CREATE INDEX console_sessions_operator_idx ON console_sessions (operator_sub);
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);

-- The apps an operator opened last (the picker's "recent apps"); a few rows per
-- operator, pruned on write. Deleting an app's registry row removes them.
CREATE TABLE console_recent_apps (
    operator_sub    uuid NOT NULL,
    app_id          text NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    used_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator_sub, app_id)
);
CREATE INDEX console_recent_apps_used_idx ON console_recent_apps (operator_sub, used_at DESC);

-- The picker's prefix search uses the pattern-ops indexes on apps that
-- 0004_platform.sql made for the platform API's app list.
