-- Retention (oneauth.retention): the background worker deletes dead rows in
-- bounded batches, DELETE ... WHERE ctid IN (SELECT ctid ... WHERE <expr> <
-- cutoff LIMIT n), and after a visit asks for the earliest moment a kept row
-- becomes prunable (min(<expr>)). Both are index range scans on these
-- expressions; without them each visit would read the whole table.
-- least()/greatest() ignore NULLs: a session that was never revoked is dead
-- at expires_at, a revoked one at the earlier of the two.
CREATE INDEX sessions_retention_idx ON sessions ((least(expires_at, revoked_at)));
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX browser_sessions_retention_idx ON browser_sessions ((least(expires_at, revoked_at)));
-- A throttle row is dead once it has neither a live window nor a live lock.
CREATE INDEX throttle_retention_idx ON throttle ((greatest(updated_at, locked_until)));
CREATE INDEX federation_pending_links_expires_idx ON federation_pending_links (expires_at);
-- Messages and deliveries by age: a batch takes the finished ones (pending ones
-- are never pruned), the due time looks at all (one may finish after the visit).
CREATE INDEX outbox_created_idx ON outbox (created_at);
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);
