-- The control plane (issue 15). The platform itself is an app (`platform`, made
-- by `oneauth platform init`): its users are the operators, its clients the
-- platform API's callers, its audit_log the control-plane audit log. What
-- cannot live in one app's schema lives here.

-- Which apps an operator (a user of the platform app) may administer in the
-- console, and how. app_id NULL = every app. No foreign key to apps: grants are
-- checked against the registry when made (`platform operators grant`), and an
-- app is never removed from the registry (deleted apps keep a tombstone).
CREATE TABLE console_grants (
    operator_sub    uuid NOT NULL,
    app_id          text CHECK (app_id ~ '^[a-z]([a-z0-9]|-(?=[a-z0-9])){2,39}$'),
    role            text NOT NULL CHECK (role IN ('viewer', 'admin')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- One grant per operator and app (NULL counts as one value: "all apps").
CREATE UNIQUE INDEX console_grants_pk ON console_grants (operator_sub, COALESCE(app_id, ''));
CREATE INDEX console_grants_app_idx ON console_grants (app_id);

-- Platform writes (provision, configure, suspend, resume, delete). The service
-- role cannot create schemas or roles (D1), so the API only queues a job here;
-- the operator-role runner (`oneauth platform worker`) claims it with
-- FOR UPDATE SKIP LOCKED and runs the CLI's lifecycle function.
CREATE TABLE platform_jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL
                    CHECK (kind IN ('provision', 'configure', 'suspend', 'resume', 'delete')),
    app_id          text NOT NULL CHECK (app_id ~ '^[a-z]([a-z0-9]|-(?=[a-z0-9])){2,39}$'),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- succeeded: the registry row as the API shows it; failed: {code, detail}
    result          jsonb,
    -- the platform client that asked (audited with the job)
    actor_client_id text NOT NULL CHECK (length(actor_client_id) <= 200),
    request_id      text CHECK (length(request_id) <= 200),
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
);
CREATE INDEX platform_jobs_queued_idx ON platform_jobs (created_at) WHERE status = 'queued';
CREATE INDEX platform_jobs_app_idx ON platform_jobs (app_id, created_at);
CREATE INDEX platform_jobs_created_idx ON platform_jobs (created_at, id);

-- A new job wakes the runner; a finished one wakes whoever waits (?wait=N).
CREATE FUNCTION platform_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('oneauth_platform_jobs', NEW.id::text);
    ELSIF NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify('oneauth_platform_jobs_done', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER platform_jobs_notify
    AFTER INSERT OR UPDATE ON platform_jobs
    FOR EACH ROW EXECUTE FUNCTION platform_jobs_notify();

-- The platform API's Idempotency-Key records live in the platform app's own
-- admin_idempotency table (sql/app/0016_admin.sql): the platform routes run in
-- the platform app's transaction, like every admin route in its app's.

-- The platform API's app list: `?q=` is a prefix of the app_id or of the
-- display name (case-insensitive), keyset-paginated on app_id. text_pattern_ops
-- lets LIKE 'prefix%' use the btree whatever the database's collation.
CREATE INDEX apps_app_id_pattern_idx ON apps (app_id text_pattern_ops);
CREATE INDEX apps_display_name_pattern_idx ON apps (lower(display_name) text_pattern_ops);
