-- Webhooks (README "Webhooks"): the app's endpoints and, as a transactional
-- outbox, one delivery row per (event, subscribed endpoint), written in the
-- transaction of the change it reports: a committed change always has its
-- deliveries queued, a rolled-back one never sends anything. The delivery
-- worker claims rows with FOR UPDATE SKIP LOCKED under a lease, as the mail
-- worker does with the email outbox.
CREATE TABLE webhook_endpoints (
    id            text PRIMARY KEY CHECK (id ~ '^whe_[A-Za-z0-9_-]{16,64}$'),
    url           text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    -- The signing secret (whsec_...), sealed with the master key and bound to
    -- the app and this endpoint's id: shown once at creation or rotation only.
    secret_sealed text NOT NULL CHECK (secret_sealed LIKE 'v1.%'),
    event_types   text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 64),
    enabled       boolean NOT NULL DEFAULT true,
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    secret_rotated_at timestamptz
);
-- The admin API's list: keyset pages in creation order.
CREATE INDEX webhook_endpoints_created_idx ON webhook_endpoints (created_at, id);
-- emit's one query (when the subscription cache says the event is wanted).
CREATE INDEX webhook_endpoints_types_idx ON webhook_endpoints USING gin (event_types)
    WHERE enabled;

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The event's id (evt_...), the same for every endpoint and every attempt
    -- and replay: receivers de-duplicate on the webhook-id header.
    event_id        text NOT NULL CHECK (event_id ~ '^evt_[A-Za-z0-9_-]{16,64}$'),
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type      text NOT NULL CHECK (event_type ~ '^[a-z][a-z_]*\.[a-z][a-z_]*$'),
    -- The whole body sent: {"id","type","timestamp","app_id","data"}; no secrets.
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    -- Attempts made; the worker dead-letters after its configured maximum.
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- While status = 'sending': the claim's lease; a row whose lease ran out
    -- (the worker died mid-request) is claimable again.
    lease_until     timestamptz,
    claim_id        uuid,
    last_status     integer,
    last_error      text CHECK (length(last_error) <= 500),
    -- A replay is a new row (the original keeps its history).
    replay_of       bigint REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_lease_idx ON webhook_deliveries (lease_until)
    WHERE status = 'sending';
-- The admin API's list: one endpoint's deliveries, newest first (keyset on id).
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
