-- What the webhook delivery workers last learned of each app's
-- webhook_deliveries table (the mail sweep's scheme, oneauth.mail_sweep): a
-- worker starting up visits only the apps whose statistics counter moved or
-- whose retry is due, instead of entering every app's schema. Written by the
-- workers as the service's login role; app roles have no access to it.
CREATE TABLE webhook_sweep (
    app_id      text PRIMARY KEY REFERENCES apps (app_id) ON DELETE CASCADE,
    changes     bigint NOT NULL,
    next_due_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
