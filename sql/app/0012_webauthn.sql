-- Passkeys / WebAuthn (issue 12; W3C WebAuthn Level 3). A credential is one
-- row of mfa_factors (kind 'webauthn', confirmed when stored: registration
-- verifies the attestation, there is nothing left to confirm) plus its public
-- key here. Every app shares the issuer's host as RP ID, so the browser offers
-- a passkey of app A at app B: this schema is the only place B ever looks, and
-- a credential id of A names no row here (SECURITY.md W1).
CREATE TABLE webauthn_credentials (
    factor_id        uuid PRIMARY KEY REFERENCES mfa_factors (id) ON DELETE CASCADE,
    -- The authenticator's credential id (at most 1023 bytes, WebAuthn L3 5.1).
    credential_id    bytea NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 16 AND 1023),
    -- COSE_Key (RFC 9052) as the authenticator sent it at registration.
    public_key       bytea NOT NULL CHECK (length(public_key) <= 2048),
    -- The signature counter (WebAuthn 6.1.1): 0 for authenticators that keep
    -- none (synced passkeys); a non-zero counter must only ever grow.
    sign_count       bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    transports       text[] NOT NULL DEFAULT '{}',
    -- Backup eligibility (BE) is fixed at registration; backup state (BS) may
    -- change. BE means a synced (multi-device) passkey: amr swk, not hwk.
    backup_eligible  boolean NOT NULL,
    backup_state     boolean NOT NULL,
    aaguid           uuid,
    -- Whether the authenticator verified the user (UV) at registration.
    user_verified    boolean NOT NULL
);

-- The WebAuthn user handle (user.id) of each user in this app: 32 random
-- bytes, never the user id, so a credential shows nothing that links the
-- same person across apps (or to the account id in tokens).
CREATE TABLE webauthn_user_handles (
    user_id  uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle   bytea NOT NULL UNIQUE CHECK (length(handle) = 32)
);

-- Outstanding challenges (WebAuthn 13.4.3): single use (consumed by a
-- DELETE ... RETURNING, so of two concurrent submissions exactly one finds
-- it), five minutes, bound to the user that asked to register or to the
-- sign-in flow that asked to authenticate. Only the SHA-256 of the challenge
-- is stored; the browser returns the challenge inside clientDataJSON.
CREATE TABLE webauthn_challenges (
    challenge_hash  bytea PRIMARY KEY CHECK (length(challenge_hash) = 32),
    purpose         text NOT NULL CHECK (purpose IN ('register', 'authenticate')),
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    flow_id         uuid REFERENCES auth_flows (id) ON DELETE CASCADE,
    -- The user verification the options asked for: 'required' is enforced
    -- on the response, whatever the browser claims to have done.
    user_verification text NOT NULL CHECK (user_verification IN ('preferred', 'required')),
    expires_at      timestamptz NOT NULL,
    CHECK ((purpose = 'register') = (user_id IS NOT NULL AND flow_id IS NULL)),
    CHECK (purpose <> 'authenticate' OR flow_id IS NOT NULL)
);

CREATE INDEX webauthn_challenges_expires_idx ON webauthn_challenges (expires_at);
