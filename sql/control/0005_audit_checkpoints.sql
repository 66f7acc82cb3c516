-- Signed checkpoints of each app's audit chain (A2): the chain head (the
-- newest sealed audit row and its row_hash) as a JWS signed with the app's
-- current signing key, taken by the sealer periodically and before every
-- retention prune. `oneauth audit verify` checks the chain against them, so a
-- database writer who rewrites a whole chain consistently (triggers disabled)
-- is detected: the rewritten head no longer matches what was signed. The
-- service role may insert and read, never update or delete (roles.py).
CREATE TABLE audit_checkpoints (
    app_id          text NOT NULL REFERENCES apps (app_id) ON DELETE CASCADE,
    seq             bigint NOT NULL CHECK (seq >= 1),
    -- periodic: the head at that time; prune: rows <= pruned_through are about
    -- to be deleted and verification starts from this head.
    kind            text NOT NULL CHECK (kind IN ('periodic', 'prune')),
    audit_id        bigint NOT NULL,
    row_hash        bytea NOT NULL CHECK (length(row_hash) = 32),
    pruned_through  bigint,
    -- The signature: the claims repeat every column above (the columns are an
    -- index; verification trusts only the signed claims).
    jws             text NOT NULL,
    kid             text NOT NULL,
    public_jwk      jsonb NOT NULL,
    -- kid sealed with the master key for this app: only a holder of the master
    -- key can vouch that this public key is one of the app's signing keys.
    key_proof       text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, seq)
);

-- What the sealers last learned of each app (like mail_sweep): the audit_log
-- insert counter of the statistics at the app's last complete seal, and when
-- its next checkpoint and retention run are due, so a restarted worker does not
-- enter every app's schema.
CREATE TABLE audit_sweep (
    app_id             text PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    inserts            bigint NOT NULL,
    checkpoint_due_at  timestamptz,
    prune_due_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
