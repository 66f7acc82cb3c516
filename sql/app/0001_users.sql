-- One app's users. Runs with search_path set to the app's schema: no schema is
-- named here. The same email in two apps is two unrelated rows in two schemas.
CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email               text NOT NULL CHECK (length(email) <= 320),
    -- Lower-cased, NFKC-normalized, trimmed; the per-app identity key (B5).
    email_normalized    text NOT NULL CHECK (length(email_normalized) <= 320),
    email_verified      boolean NOT NULL DEFAULT false,
    password_hash       text,
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'disabled', 'deleted')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz,
    last_login_at       timestamptz,
    CONSTRAINT users_email_normalized_key UNIQUE (email_normalized)
);
