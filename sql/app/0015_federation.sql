-- Federation (issue 14): this app's upstream identity providers, the upstream
-- identities of its users, and the sign-ins in progress at an upstream.
-- Everything lives in the app's own schema: a provider, identity, state or
-- code of app A names no row at app B (B1, B5).

-- One upstream identity provider of this app, with this app's own client
-- credentials at the upstream and its own policy. The id is part of the
-- callback URL registered upstream: {issuer}/federation/{id}/callback.
CREATE TABLE identity_providers (
    id                    text PRIMARY KEY CHECK (id ~ '^idp_[A-Za-z0-9_-]{16,43}$'),
    kind                  text NOT NULL
                          CHECK (kind IN ('oidc', 'google', 'microsoft', 'apple', 'github')),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The hosted login page's button text (default: "Continue with <name>").
    button_label          text CHECK (length(button_label) BETWEEN 1 AND 100),
    -- The upstream issuer (OIDC: checked against discovery, the ID token's iss
    -- and RFC 9207 iss); github: the web base URL of the server.
    issuer                text NOT NULL CHECK (length(issuer) BETWEEN 8 AND 500),
    client_id             text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
    -- client_secret_basic/post: the secret; private_key_jwt and apple: the PEM or
    -- JWK of the signing key. Sealed by the secret box with the app and this
    -- provider in the associated data (A2): a sealed value copied to another
    -- provider or app does not open.
    client_secret_sealed  text NOT NULL,
    auth_method           text NOT NULL DEFAULT 'client_secret_basic'
                          CHECK (auth_method IN ('client_secret_basic', 'client_secret_post',
                                                 'private_key_jwt', 'apple_client_secret')),
    -- Non-secret extras: apple team_id/key_id, private_key_jwt kid, endpoint
    -- overrides (authorization_endpoint, token_endpoint, api_base for github).
    auth_params           jsonb NOT NULL DEFAULT '{}',
    scopes                text[] NOT NULL,
    -- Upstream claim names for email, name, ... when they differ.
    claim_mapping         jsonb NOT NULL DEFAULT '{}',
    enabled               boolean NOT NULL DEFAULT true,
    -- Create a local user on a first upstream sign-in (just in time).
    jit_signup            boolean NOT NULL DEFAULT true,
    -- A local account with the same email: 'confirm' = the user proves that
    -- account and confirms, then it is linked; 'never' = refused. Never silent.
    linking               text NOT NULL DEFAULT 'confirm' CHECK (linking IN ('confirm', 'never')),
    -- Whether this upstream's email_verified is believed at all.
    trust_email_verified  boolean NOT NULL DEFAULT true,
    -- Whether the upstream's amr (mfa, hwk, ...) counts toward this app's MFA.
    trust_amr             boolean NOT NULL DEFAULT false,
    -- Keep the upstream's tokens (sealed) on the identity; default: discarded.
    keep_tokens           boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- A user's identity at an upstream, keyed by (provider, upstream issuer,
-- upstream subject) (B5, F1). Microsoft: subject is '<tid>:<oid>' (the tenant
-- and object ids), never the mutable email (nOAuth).
CREATE TABLE user_identities (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id     text NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    issuer          text NOT NULL CHECK (length(issuer) <= 500),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    -- As the upstream last said (display only; never a lookup key).
    email           text CHECK (length(email) <= 320),
    email_verified  boolean NOT NULL DEFAULT false,
    tokens_sealed   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz,
    UNIQUE (provider_id, issuer, subject)
);

CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- A redirect to an upstream in progress (state, nonce, PKCE): bound to the
-- flow that started it, single use (a guarded UPDATE of used_at), 10 minutes.
-- Only the SHA-256 of the state is stored; the PKCE verifier is sealed.
CREATE TABLE federation_requests (
    state_hash       bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    flow_id          uuid NOT NULL REFERENCES auth_flows (id) ON DELETE CASCADE,
    provider_id      text NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    -- 'login': sign in (or up); 'link': add this provider to user_id's account.
    purpose          text NOT NULL DEFAULT 'login' CHECK (purpose IN ('login', 'link')),
    user_id          uuid REFERENCES users (id) ON DELETE CASCADE,
    nonce            text NOT NULL CHECK (length(nonce) <= 100),
    verifier_sealed  text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    used_at          timestamptz,
    CHECK (purpose <> 'link' OR user_id IS NOT NULL)
);

CREATE INDEX federation_requests_expires_idx ON federation_requests (expires_at);

-- An upstream identity whose email matches a local account: it is linked only
-- after the user proves that account (a sign-in with one of its factors, in
-- the same flow) and confirms. Single use, 10 minutes.
CREATE TABLE federation_pending_links (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    flow_id         uuid NOT NULL REFERENCES auth_flows (id) ON DELETE CASCADE,
    provider_id     text NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer          text NOT NULL CHECK (length(issuer) <= 500),
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 500),
    email           text CHECK (length(email) <= 320),
    email_verified  boolean NOT NULL,
    upstream_amr    text[] NOT NULL DEFAULT '{}',
    tokens_sealed   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);

CREATE INDEX federation_pending_links_flow_idx ON federation_pending_links (flow_id);

-- The one-time code a first-party start (GET .../start?redirect_uri=...) ends
-- with, exchanged once at POST /v1/federation/complete for the token set.
-- Only its SHA-256 is stored; 2 minutes; single use.
CREATE TABLE federation_codes (
    code_hash    bytea PRIMARY KEY CHECK (length(code_hash) = 32),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id  text REFERENCES identity_providers (id) ON DELETE SET NULL,
    amr          text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

CREATE INDEX federation_codes_expires_idx ON federation_codes (expires_at);
