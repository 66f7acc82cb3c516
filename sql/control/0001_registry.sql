-- The app registry: one row per app, ever. Deleted apps keep a tombstone so an
-- app_id is never reused (tokens and links issued for it must stay dead).
CREATE TABLE apps (
    app_id          text PRIMARY KEY
                    CHECK (app_id ~ '^[a-z]([a-z0-9]|-(?=[a-z0-9])){2,39}$'),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'suspended', 'deleted')),
    -- Derived from app_id by oneauth.db.naming; stored so the database itself
    -- enforces that the mapping is injective.
    schema_name     text NOT NULL UNIQUE,
    role_name       text NOT NULL UNIQUE,
    schema_version  integer NOT NULL DEFAULT 0,
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);

CREATE INDEX apps_status_idx ON apps (status);

-- Every process caches the registry; a change is broadcast so caches drop the
-- entry at once (a TTL covers deployments where LISTEN is unavailable).
CREATE FUNCTION apps_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('oneauth_registry', COALESCE(NEW.app_id, OLD.app_id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER apps_notify_change
    AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION apps_notify_change();
