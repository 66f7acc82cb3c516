"""No mail bombing: how many messages an address, a requester and an IP may trigger (SQL).

Fixed windows in the app's shared ``throttle`` table, three counters per message:

* address and requester (``mail:pair:<h>:<h>``, the requester being the
  client's keyed IP hash): the small allowance, so one requester cannot use
  up an address's mail and keep the owner from getting theirs;
* address (``mail:acct:<h>``): a higher cap, so requesters at many addresses
  together are still bounded;
* IP (``mail:ip:<h>``): one requester asking for many addresses.

A message is counted on all three only if each is under its limit, in one step
under row locks (``identity.throttle.lock_counters``), so concurrent requests
never send more than the limits and a refused request uses up nothing. Keys are
keyed hashes (``identity.throttle.Names``), never the address or IP. The
counters count every request for an address whether or not an account has it,
so a 429 says nothing about existence (P4). Callers audit a refusal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg

from oneauth import metrics
from oneauth.identity.throttle import Count, Names, lock_counters, write_counts


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: int


PER_REQUESTER = Window(limit=5, seconds=15 * 60)  # one address, asked for by one requester
PER_ADDRESS = Window(limit=20, seconds=15 * 60)  # one address, whoever asks
PER_IP = Window(limit=30, seconds=15 * 60)  # one requester, whatever address


def keys_for(names: Names, address: str, ip_hash: str | None) -> dict[str, Window]:
    account = names.account(address).removeprefix("acct:")
    requester = "-" if ip_hash is None else names.hash("ip", ip_hash)
    keys = {
        f"mail:acct:{account}": PER_ADDRESS,
        f"mail:pair:{account}:{requester}": PER_REQUESTER,
    }
    if ip_hash is not None:
        keys[f"mail:ip:{requester}"] = PER_IP
    return keys


async def take(
    conn: asyncpg.Connection, names: Names, address: str, ip_hash: str | None
) -> int | None:
    """Count one message for the address, requester and IP, or the seconds to wait."""
    keys = keys_for(names, address, ip_hash)
    counters = await lock_counters(conn, list(keys))
    wait = 0.0
    for key, window in keys.items():
        counter = counters[key]
        if counter.current(window.seconds) >= window.limit:
            wait = max(wait, window.seconds - counter.age)
    if wait > 0:
        metrics.THROTTLE_MAIL.inc()
        return max(1, math.ceil(wait))
    await write_counts(
        conn,
        [
            Count(
                key,
                counters[key].current(window.seconds) + 1,
                restart=counters[key].expired(window.seconds),
            )
            for key, window in keys.items()
        ],
    )
    return None
