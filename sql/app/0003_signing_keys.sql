-- The app's asymmetric signing keys (T3). Private parts are sealed with the
-- master key (AES-256-GCM, bound to app and kid); this table never holds plaintext.
-- Lifecycle: next (published, not signing) -> active (signing) -> retired
-- (published until publish_until) -> deleted. An emergency rotation marks the
-- active key revoked: unpublished at once, everything it signed refused.
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    alg             text NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256')),
    state           text NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    public_jwk      jsonb NOT NULL,
    private_sealed  text NOT NULL CHECK (private_sealed LIKE 'v1.%'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A next key may sign only once every verifier's cached JWKS has seen it.
    activate_after  timestamptz,
    activated_at    timestamptz,
    retired_at      timestamptz,
    publish_until   timestamptz,
    revoked_at      timestamptz
);

CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next_per_alg ON signing_keys (alg) WHERE state = 'next';
