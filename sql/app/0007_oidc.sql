-- The app as an OpenID Provider: browser sessions of the hosted login page,
-- authorization codes, and remembered consent. No schema is named: every
-- row lives in the app's own schema, so nothing here can cross an app boundary.

-- One sign-in at this app's hosted login page (S4). The cookie holds an opaque
-- 256-bit token; only its SHA-256 is stored. A new sign-in always makes a new
-- row (the cookie is rotated at login; no session fixation). Absolute lifetime
-- in expires_at, idle lifetime from last_seen_at (S2).
CREATE TABLE browser_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash      bytea NOT NULL UNIQUE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr             text[] NOT NULL,
    auth_time       timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text,
    ip_hash         text,
    user_agent      text CHECK (length(user_agent) <= 512)
);

CREATE INDEX browser_sessions_user_idx ON browser_sessions (user_id) WHERE revoked_at IS NULL;

-- A token session started from a browser session (authorization code flow)
-- ends with it: RP-initiated logout revokes the refresh families it started.
ALTER TABLE sessions
    ADD COLUMN browser_session_id uuid REFERENCES browser_sessions (id) ON DELETE SET NULL;

CREATE INDEX sessions_browser_session_idx ON sessions (browser_session_id)
    WHERE browser_session_id IS NOT NULL;

-- Authorization codes (RFC 6749 section 4.1, O2, O3): stored as SHA-256, bound to
-- the client, the exact redirect URI and a PKCE S256 challenge (RFC 7636; a code
-- without a challenge cannot exist). Single use: the exchange is one UPDATE ...
-- WHERE used_at IS NULL; session_id remembers what the exchange produced so a
-- second use can revoke it (RFC 6749 section 4.1.2, RFC 9700 section 4.2.4).
CREATE TABLE authorization_codes (
    code_hash           bytea PRIMARY KEY,
    client_id           text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    browser_session_id  uuid NOT NULL REFERENCES browser_sessions (id) ON DELETE CASCADE,
    redirect_uri        text NOT NULL,
    code_challenge      text NOT NULL CHECK (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    scope               text NOT NULL,
    nonce               text,
    auth_time           timestamptz NOT NULL,
    amr                 text[] NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    session_id          uuid REFERENCES sessions (id) ON DELETE SET NULL,
    CHECK (expires_at <= created_at + interval '10 minutes')
);

CREATE INDEX authorization_codes_expires_idx ON authorization_codes (expires_at);

-- Remembered consent of a user to a third-party client; revoking keeps the row
-- (revoked_at) and ends the client's sessions of that user.
CREATE TABLE consents (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scopes      text[] NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (user_id, client_id)
);

-- private_key_jwt client authentication (RFC 7523 section 2.2, OIDC Core 9): a
-- confidential client signs a short-lived JWT with its own key instead of
-- sending a secret. Only its public JWK Set is stored, inline: the server never
-- fetches a URL a client names (no jwks_uri, no SSRF).
ALTER TABLE clients ADD COLUMN jwks jsonb;
ALTER TABLE clients DROP CONSTRAINT clients_token_endpoint_auth_method_check;
ALTER TABLE clients ADD CONSTRAINT clients_token_endpoint_auth_method_check
    CHECK (token_endpoint_auth_method IN
           ('none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'));
ALTER TABLE clients ADD CONSTRAINT clients_jwks_check
    CHECK ((token_endpoint_auth_method = 'private_key_jwt') = (jwks IS NOT NULL));

-- Each assertion is accepted once (RFC 7523 section 3, item 7): its jti is kept
-- until the assertion expires.
CREATE TABLE client_assertion_jtis (
    client_id   text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    jti         text NOT NULL CHECK (length(jti) BETWEEN 1 AND 256),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertion_jtis_expires_idx ON client_assertion_jtis (expires_at);
