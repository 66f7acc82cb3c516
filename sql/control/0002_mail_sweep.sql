-- What the mail delivery workers last learned of each app's outbox, so that a
-- worker starting up (a deploy, a restart) does not enter every app's schema to
-- find mail queued while no worker listened: it compares each outbox's
-- statistics counter with the one recorded here and visits only the apps whose
-- counter moved (after a crash the statistics restart from zero, so every app
-- with mail is visited). Written by the workers as the service's login role;
-- app roles have no access to the control schema.
CREATE TABLE mail_sweep (
    app_id      text PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    -- the outbox's inserts + updates + deletes, read just before the visit
    changes     bigint NOT NULL,
    -- the earliest retry that visit left waiting (NULL: none)
    next_due_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
