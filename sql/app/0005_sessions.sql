-- Sessions and their refresh-token families (S1-S3). One session is one login;
-- its refresh tokens form one family: rotated on every use, and a replayed
-- (already used) token revokes the whole family.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id       text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    amr             text[] NOT NULL,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,   -- absolute lifetime
    revoked_at      timestamptz,
    revoked_reason  text,
    ip_hash         text,
    user_agent      text
);

CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash    bytea NOT NULL UNIQUE,          -- SHA-256 of the opaque token
    session_id    uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    client_id     text NOT NULL,
    scope         text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,           -- idle lifetime, capped by the session's
    used_at       timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
