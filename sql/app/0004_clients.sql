-- OAuth clients of this app. Client ids start with "cl_" and can never equal a
-- user's sub (a UUID), so a client-credentials token is never mistaken for a
-- user's (T4, RFC 9700 section 4.15).
CREATE TABLE clients (
    client_id                   text PRIMARY KEY CHECK (client_id ~ '^cl_[A-Za-z0-9_-]{8,64}$'),
    name                        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind                        text NOT NULL CHECK (kind IN ('public', 'confidential')),
    first_party                 boolean NOT NULL DEFAULT false,
    redirect_uris               text[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris   text[] NOT NULL DEFAULT '{}',
    grant_types                 text[] NOT NULL,
    scopes                      text[] NOT NULL,
    token_endpoint_auth_method  text NOT NULL
        CHECK (token_endpoint_auth_method IN ('none', 'client_secret_basic', 'client_secret_post')),
    access_token_ttl            integer CHECK (access_token_ttl BETWEEN 60 AND 86400),
    refresh_token_ttl           integer CHECK (refresh_token_ttl BETWEEN 60 AND 31536000),
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    disabled_at                 timestamptz,
    CHECK ((kind = 'public') = (token_endpoint_auth_method = 'none'))
);

-- Server-generated secrets (>= 256 bits) stored as SHA-256: a fast hash is right
-- for high-entropy secrets. Several may be valid at once during a rotation.
CREATE TABLE client_secrets (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id    text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);

CREATE INDEX client_secrets_client_idx ON client_secrets (client_id);
