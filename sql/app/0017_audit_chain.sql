-- The audit log's hash chain (A2). audit_log rows are written exactly as
-- before (one INSERT in the transaction of the change); the sealer
-- (oneauth.auditchain.sealer) links committed rows in id order afterwards,
-- one row here per audit row:
--     row_hash = SHA-256(prev_hash || canonical(audit_log row))
-- with prev_hash the previous row's row_hash (the first row: the app's genesis
-- hash). The canonical serialisation is documented in oneauth/auditchain/chain.py
-- and README ("Audit log"). Insert-only: rows are never updated; they are
-- deleted only by audit_prune below, together with the audit rows they seal.
CREATE TABLE audit_chain (
    audit_id   bigint PRIMARY KEY,
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    row_hash   bytea NOT NULL CHECK (length(row_hash) = 32),
    sealed_at  timestamptz NOT NULL DEFAULT now()
);

-- The sealer's safe horizon relies on ids being handed out one at a time from
-- the shared sequence (an identity column's default): with a per-backend
-- cache a backend could insert an id below one the sealer had already passed.
ALTER TABLE audit_log ALTER COLUMN id SET CACHE 1;

-- Pruning (retention, setting audit_retention_days). The app role owns these
-- tables, so no privilege can stop it for good (an owner can re-grant itself
-- anything and disable triggers): the guarantee is the chain and the signed
-- checkpoints in the control schema, which detect any removal that is not a
-- recorded prune. The triggers make the one legitimate path explicit and
-- keep mistakes out: a DELETE passes only inside audit_prune (which sets the
-- transaction-local marks below and clears them again), only for rows at or
-- below the pruned-through id it was given, older than its cutoff (at least
-- one day old), and already sealed. The worker calls it only after it has
-- signed a checkpoint of the chain head at that id ("prune" checkpoint), so
-- verification starts from that checkpoint afterwards.
CREATE FUNCTION audit_prune_allows(p_id bigint, p_occurred_at timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_through bigint := nullif(current_setting('oneauth.audit_prune_through', true), '')::bigint;
    v_before timestamptz := nullif(current_setting('oneauth.audit_prune_before', true), '')::timestamptz;
BEGIN
    RETURN v_through IS NOT NULL AND v_before IS NOT NULL
        AND v_before <= now() - interval '1 day'
        AND p_id <= v_through
        AND (p_occurred_at IS NULL OR p_occurred_at < v_before);
END;
$$;

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' AND audit_prune_allows(OLD.id, OLD.occurred_at)
       AND EXISTS (SELECT FROM audit_chain WHERE audit_id = OLD.id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION audit_chain_insert_only() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    -- The chain row goes with its audit row (audit_prune deletes those first).
    IF TG_OP = 'DELETE' AND audit_prune_allows(OLD.audit_id, NULL)
       AND NOT EXISTS (SELECT FROM audit_log WHERE id = OLD.audit_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_chain is insert-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_chain_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_insert_only();

CREATE TRIGGER audit_chain_no_truncate
    BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_insert_only();

-- Deletes the audit rows (and their chain rows) with id <= p_through, all of
-- them or none: a row younger than p_before or not yet sealed makes the
-- trigger refuse and the whole batch roll back. The newest chain row always
-- stays (the sealer continues from it). Returns the number of audit rows.
CREATE FUNCTION audit_prune(p_through bigint, p_before timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_count bigint;
BEGIN
    IF p_before > now() - interval '1 day' THEN
        RAISE EXCEPTION 'audit_prune keeps at least the last day' USING ERRCODE = 'check_violation';
    END IF;
    IF p_through >= (SELECT max(audit_id) FROM audit_chain) THEN
        RAISE EXCEPTION 'audit_prune keeps the newest sealed row' USING ERRCODE = 'check_violation';
    END IF;
    PERFORM set_config('oneauth.audit_prune_through', p_through::text, true),
            set_config('oneauth.audit_prune_before', p_before::text, true);
    DELETE FROM audit_log WHERE id <= p_through;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    DELETE FROM audit_chain WHERE audit_id <= p_through;
    PERFORM set_config('oneauth.audit_prune_through', '', true),
            set_config('oneauth.audit_prune_before', '', true);
    RETURN v_count;
END;
$$;

-- The owner may delete, but only what the triggers above let through.
GRANT DELETE ON audit_log, audit_chain TO CURRENT_USER;
REVOKE UPDATE, TRUNCATE ON audit_chain FROM CURRENT_USER;
