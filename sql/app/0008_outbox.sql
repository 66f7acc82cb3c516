-- The app's transactional outbox of email messages. A row is written in the
-- same transaction as the one-time token it carries, so a committed token
-- always has its message queued and a rolled-back one never sends anything.
-- The delivery worker claims rows with FOR UPDATE SKIP LOCKED, leases them while
-- it talks SMTP, and marks them sent; a crash between the SMTP "250" and the
-- mark means the lease expires and the message is sent again with the same
-- Message-ID (at-least-once; see README "Email delivery").
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Which template renders it (verify_email, reset_password, ...).
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    recipient       text NOT NULL CHECK (length(recipient) <= 320),
    -- Template values that are not secret (masked addresses, ...).
    context         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Links and codes, sealed with the master key (AES-GCM, bound to the app,
    -- kind and recipient). Set to NULL once sent, expired or dead: after
    -- delivery the raw link exists only in the recipient's mailbox.
    secrets_sealed  text CHECK (secrets_sealed LIKE 'v1.%'),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'dead', 'expired')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- While status = 'sending': the claim's lease; a row whose lease ran out
    -- (the worker died mid-send) is claimable again.
    lease_until     timestamptz,
    claim_id        uuid,
    -- The link inside is useless after this; never send a dead link.
    not_after       timestamptz,
    last_error      text CHECK (length(last_error) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CHECK (status NOT IN ('sent', 'dead', 'expired') OR secrets_sealed IS NULL)
);

-- The worker's one query per app: what is due (pending, or a lease that ran out).
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_lease_idx ON outbox (lease_until) WHERE status = 'sending';
