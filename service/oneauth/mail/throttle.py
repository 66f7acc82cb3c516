"""No mail bombing: how many messages one address, and one IP, may trigger (SQL).

Fixed windows in the app's shared ``throttle`` table (keys ``mail:acct:<h>`` and
``mail:ip:<h>``, hashes only). The address counter counts every request for an
address whether or not an account has it, so a 429 says nothing about
existence (P4). Callers audit a refusal.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: int


PER_ADDRESS = Window(limit=5, seconds=15 * 60)
PER_IP = Window(limit=30, seconds=15 * 60)


def _h(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def keys_for(address: str, ip_hash: str | None) -> dict[str, Window]:
    keys = {f"mail:acct:{_h('acct|' + address)}": PER_ADDRESS}
    if ip_hash is not None:
        keys[f"mail:ip:{_h('ip|' + ip_hash)}"] = PER_IP
    return keys


async def take(conn: asyncpg.Connection, address: str, ip_hash: str | None) -> int | None:
    """Count one message for the address and IP; seconds to wait if over a limit."""
    keys = keys_for(address, ip_hash)
    wait: int | None = None
    # One statement per window length keeps the SQL simple; both are 15 min today.
    for seconds in sorted({w.seconds for w in keys.values()}):
        names = [k for k, w in keys.items() if w.seconds == seconds]
        rows = await conn.fetch(
            "INSERT INTO throttle AS t (key, failures, window_start, updated_at)"
            " SELECT k, 1, now(), now() FROM unnest($1::text[]) AS k"
            " ON CONFLICT (key) DO UPDATE SET"
            "  failures = CASE WHEN t.window_start <= now() - make_interval(secs => $2)"
            "   THEN 1 ELSE t.failures + 1 END,"
            "  window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2)"
            "   THEN now() ELSE t.window_start END,"
            "  updated_at = now()"
            " RETURNING key, failures,"
            "  extract(epoch FROM t.window_start + make_interval(secs => $2) - now()) AS left",
            names,
            seconds,
        )
        for row in rows:
            if row["failures"] > keys[row["key"]].limit:
                left = max(1, math.ceil(float(row["left"])))
                wait = max(wait or 0, left)
    return wait
