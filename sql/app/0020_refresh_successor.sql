-- A refresh rotation keeps its successor, encrypted under a key derived from the
-- presented token (oneauth.sessions.successor), so that a retry of that token
-- within the grace window, while the successor is unused, gets the same
-- successor instead of an error: a response lost on the way (a timeout, a
-- Postgres restart after the commit) no longer signs the user out. Only the
-- holder of the presented token can open it: the token itself is never stored,
-- only its SHA-256. Nullable without a default: a catalog-only change.
ALTER TABLE refresh_tokens ADD COLUMN successor_enc bytea;
