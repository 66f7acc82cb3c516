-- Append-only audit log of one app (security requirement A1). Rows are written
-- in the same transaction as the change they record.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    event        text NOT NULL CHECK (event ~ '^[a-z][a-z0-9_.]*$'),
    outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied', 'error')),
    actor_type   text,
    actor_id     text,
    target_type  text,
    target_id    text,
    request_id   text,
    ip_hash      text,
    user_agent   text CHECK (length(user_agent) <= 512),
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, occurred_at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The owner gives up its own right to change history; the triggers back this up.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;
