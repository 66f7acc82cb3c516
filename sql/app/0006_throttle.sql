-- Failed-attempt counters shared by every process and replica (P3). Keys are
-- hashes: "acct:<h>", "ip:<h>", "pair:<h>:<h>". A counter decays when its
-- window ends; locked_until grows exponentially with failures, capped.
CREATE TABLE throttle (
    key           text PRIMARY KEY,
    failures      integer NOT NULL DEFAULT 0,
    window_start  timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX throttle_updated_idx ON throttle (updated_at);
