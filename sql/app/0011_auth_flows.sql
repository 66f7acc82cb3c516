-- Authentication flows and second factors (issue 12). A flow is one sign-in
-- (or enrolment, step-up) in progress: the factors it has satisfied so far,
-- what it serves and who may continue it. Only the SHA-256 of the flow token
-- is stored; a token of app A names no row in app B's schema.
CREATE TABLE auth_flows (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('login', 'signup', 'step_up', 'enrol')),
    secret_hash   bytea NOT NULL UNIQUE,
    -- 'api:<first-party client_id>' or 'browser:<sha256 hex of a cookie nonce>':
    -- a flow continues only for the caller it was started for.
    binding       text NOT NULL CHECK (binding ~ '^(api|browser):' AND length(binding) <= 200),
    -- {"client_id": ..., "authorize": <sealed authorization request> | null}
    serves        jsonb NOT NULL DEFAULT '{}',
    user_id       uuid REFERENCES users (id) ON DELETE CASCADE,
    -- [{"factor": "password", "amr": ["pwd"], "at": <unix seconds>}]
    satisfied     jsonb NOT NULL DEFAULT '[]',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0
);

CREATE INDEX auth_flows_expires_idx ON auth_flows (expires_at);

-- A user's second factors. Only confirmed rows count (an unconfirmed TOTP
-- enrolment proves nothing). secret_sealed: the TOTP seed sealed by the
-- secret box (A2) with the app and user in its associated data, so a seed
-- copied to another row or app does not open.
CREATE TABLE mfa_factors (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('totp', 'webauthn', 'recovery_codes')),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    last_used_at  timestamptz,
    secret_sealed text,
    -- TOTP replay guard (RFC 6238 section 5.2): the last accepted time step;
    -- a code is accepted only for a later step, in one guarded UPDATE.
    last_step     bigint,
    CHECK (kind <> 'totp' OR secret_sealed IS NOT NULL)
);

CREATE INDEX mfa_factors_user_idx ON mfa_factors (user_id);
-- One set of recovery codes per user: regenerating replaces the row.
CREATE UNIQUE INDEX mfa_factors_one_recovery_set ON mfa_factors (user_id)
    WHERE kind = 'recovery_codes';

-- Recovery codes: keyed hashes only (HMAC-SHA-256 under a key derived from the
-- master key, app and user in the message); single use by a guarded UPDATE.
CREATE TABLE recovery_codes (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    factor_id  uuid NOT NULL REFERENCES mfa_factors (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    UNIQUE (factor_id, code_hash)
);
