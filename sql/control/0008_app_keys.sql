-- Crypto-shredding (README "Operations", SECURITY.md K1-K4): each app's
-- data-encryption key (DEK), wrapped (AES-256-GCM) by the master key with the
-- app and the DEK id in the associated data. Every secret sealed for the app
-- in its schema is sealed with this DEK, so deleting this row in the
-- transaction that drops the schema makes every copy of that schema (a
-- pg_dump, a base backup) undecryptable, even with the master key. A
-- destroyed key is deleted, never kept or flagged. Master-key rotation
-- rewraps these rows only (no app schema is touched).
CREATE TABLE app_keys (
    app_id         text PRIMARY KEY REFERENCES apps (app_id),
    dek_id         text NOT NULL UNIQUE CHECK (dek_id ~ '^dek-[0-9a-f]{20}$'),
    wrapped_dek    text NOT NULL CHECK (wrapped_dek LIKE 'v1.%'),
    -- The master key id inside wrapped_dek: rotation progress without parsing.
    master_key_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    rewrapped_at   timestamptz
);

-- The platform's deletion-receipt signing keys (Ed25519): the private JWK
-- sealed by the master key; the newest row signs, all of them verify. Only
-- the operator role (the CLI) reads or writes them.
CREATE TABLE receipt_keys (
    kid             text PRIMARY KEY CHECK (kid ~ '^rk-[0-9a-f]{16}$'),
    public_jwk      jsonb NOT NULL,
    private_sealed  text NOT NULL CHECK (private_sealed LIKE 'v1.%'),
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Every deletion receipt issued (a compact JWS), written in the deleting
-- transaction; `oneauth apps verify-deleted` does not need it (the receipt
-- carries its own proof), it is kept so a lost receipt can be printed again.
CREATE TABLE deletion_receipts (
    app_id      text PRIMARY KEY REFERENCES apps (app_id),
    receipt     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
