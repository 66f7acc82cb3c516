"""Brute-force and credential-stuffing throttles, shared through Postgres (P3).

Three counters per failed login, each with its own free allowance; once it is
used up, an exponential lock (``4 * 2^(failures - free)`` seconds, capped):

* pair (account, IP): guessing one account from one address. Small allowance.
* IP: one address trying many accounts (credential stuffing).
* account: many addresses against one account. Short cap, so a botnet can
  slow a user down but never lock them out for long.

From a single IP an attacker hits the pair and IP limits long before the
account limit, so they cannot lock the real user (on another IP) out. Keys are
hashes of the normalized email and of the IP hash: the table stores neither.
Counters decay when their window ends.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Limit:
    free: int
    cap_seconds: int


PAIR = Limit(free=5, cap_seconds=15 * 60)
IP = Limit(free=50, cap_seconds=15 * 60)
ACCOUNT = Limit(free=20, cap_seconds=60)
WINDOW_SECONDS = 15 * 60
BASE_LOCK_SECONDS = 4


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    pair: str
    ip: str | None
    account: str

    @classmethod
    def for_login(cls, email_normalized: str, ip_hash: str | None) -> ThrottleKeys:
        account = _h("acct|" + email_normalized)
        ip = None if ip_hash is None else _h("ip|" + ip_hash)
        return cls(
            pair=f"pair:{account}:{ip or '-'}",
            ip=None if ip is None else f"ip:{ip}",
            account=f"acct:{account}",
        )

    def with_limits(self) -> list[tuple[str, Limit]]:
        items = [(self.pair, PAIR), (self.account, ACCOUNT)]
        if self.ip is not None:
            items.append((self.ip, IP))
        return items


async def retry_after(conn: asyncpg.Connection, keys: ThrottleKeys) -> int | None:
    """Seconds until the longest active lock ends, or None if not locked."""
    seconds = await conn.fetchval(
        "SELECT extract(epoch FROM max(locked_until) - now()) FROM throttle"
        " WHERE key = ANY($1::text[]) AND locked_until > now()",
        [k for k, _ in keys.with_limits()],
    )
    return None if seconds is None else max(1, math.ceil(float(seconds)))


_FAIL = """
INSERT INTO throttle AS t (key, failures, window_start, updated_at)
SELECT k, 1, now(), now() FROM unnest($1::text[]) AS k
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                    THEN 1 ELSE t.failures + 1 END,
    window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                        THEN now() ELSE t.window_start END,
    updated_at = now()
RETURNING key, failures
"""


async def record_failure(conn: asyncpg.Connection, keys: ThrottleKeys) -> None:
    limits = dict(keys.with_limits())
    rows = await conn.fetch(_FAIL, list(limits), WINDOW_SECONDS)
    locks = []
    for row in rows:
        limit = limits[row["key"]]
        over = row["failures"] - limit.free
        if over >= 0:  # the allowance is used up: the next attempt waits
            locks.append(
                (row["key"], min(BASE_LOCK_SECONDS * 2 ** min(over, 20), limit.cap_seconds))
            )
    if locks:
        await conn.execute(
            "UPDATE throttle SET locked_until = now() + make_interval(secs => l.seconds)"
            " FROM unnest($1::text[], $2::int[]) AS l(key, seconds) WHERE throttle.key = l.key",
            [k for k, _ in locks],
            [s for _, s in locks],
        )


async def record_success(conn: asyncpg.Connection, keys: ThrottleKeys) -> None:
    # The IP counter is kept: one good login must not clear a stuffing run.
    await conn.execute(
        "DELETE FROM throttle WHERE key = ANY($1::text[])", [keys.pair, keys.account]
    )
