-- Links and codes sent by email: verification, password reset, magic link,
-- email one-time code and email change (SECURITY.md P5, ASVS 6.4.1, 6.6.2).
-- Only keyed hashes are stored (HMAC-SHA-256 under a key derived from the
-- master key, with the app id and purpose inside the MAC): the raw values live
-- only in the outgoing message. A row of app A's schema can only ever be
-- found through app A's routes, and its MAC would not match at app B anyway.
CREATE TABLE one_time_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    purpose         text NOT NULL CHECK (purpose IN
                        ('verify_email', 'reset_password', 'magic_link', 'email_otp',
                         'change_email')),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The user's normalized address when issued: a token dies when the
    -- account's address changes.
    email           text NOT NULL CHECK (length(email) <= 320),
    -- change_email only: the new address (as typed) being confirmed.
    new_email       text CHECK (length(new_email) <= 320),
    -- The link secret (>= 256 bits): looked up by this MAC.
    token_hash      bytea UNIQUE,
    -- The 6-digit code's MAC; a code is only ever checked together with the
    -- flow it was issued to (flow_hash), never looked up by itself.
    code_hash       bytea,
    -- MAC of the flow token handed to the client (or browser cookie) that asked:
    -- codes, and magic links, work only when presented with it.
    flow_hash       bytea UNIQUE,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 20),
    expires_at      timestamptz NOT NULL,
    -- Codes are shorter-lived than links (<= 10 minutes, P5).
    code_expires_at timestamptz,
    used_at         timestamptz,
    -- reset_password only: SHA-256 of the password hash when issued, so a reset
    -- issued before a password change no longer works.
    password_fingerprint bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (token_hash IS NOT NULL OR code_hash IS NOT NULL),
    CHECK (code_hash IS NULL OR (flow_hash IS NOT NULL AND code_expires_at IS NOT NULL)),
    CHECK (purpose <> 'change_email' OR new_email IS NOT NULL)
);

CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_expires_idx ON one_time_tokens (expires_at);
