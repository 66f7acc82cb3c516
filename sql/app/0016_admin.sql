-- Admin API (issue 15): idempotency keys of the app's admin create calls.
-- One row per (acting client or operator, key): the first request's body
-- fingerprint and its answer, sealed by the secret box with this app in the
-- associated data (a create may answer a secret shown once, e.g. a client's).
-- The row is written in the transaction of the create itself, so a second
-- request with the same key waits on the primary key until the first commits
-- (then replays its answer) or rolls back (then creates): two at once never
-- both create. Rows older than 24 hours no longer count and are pruned by
-- the next create calls.
CREATE TABLE admin_idempotency (
    actor_type       text NOT NULL CHECK (actor_type IN ('client', 'operator')),
    actor_id         text NOT NULL CHECK (length(actor_id) BETWEEN 1 AND 200),
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 of method, path and body.
    fingerprint      bytea NOT NULL CHECK (length(fingerprint) = 32),
    response_status  integer,
    response_type    text,
    response_sealed  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_type, actor_id, key)
);

CREATE INDEX admin_idempotency_created_at_idx ON admin_idempotency (created_at);

-- The admin users list (keyset pages): by creation, and by address prefix.
-- COLLATE "C" so that LIKE 'prefix%' and the keyset order use one btree range.
CREATE INDEX users_created_at_id_idx ON users (created_at, id);
CREATE INDEX users_email_prefix_idx ON users ((email_normalized COLLATE "C"));
