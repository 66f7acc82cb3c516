"""Brute-force and credential-stuffing throttles, shared through Postgres (P3, P8).

Three counters per login attempt, each with its own free allowance; once it is
used up, an exponential lock (``4 * 2^(attempts - free)`` seconds, capped):

* pair (account, IP): guessing one account from one address. Small allowance.
* IP: one address trying many accounts (credential stuffing).
* account: many addresses against one account. Short cap, so a botnet can
  slow a user down but never lock them out for long.

Reserve first, verify after (P8). ``reserve`` is the only check: in one short
transaction it locks the attempt's counter rows (in key order, so concurrent
reservations never deadlock), refuses if any is locked, and otherwise counts
the attempt and sets the lock that its count earns. Only an allowed
reservation may run argon2, after that transaction commits (no connection
waits idle in a transaction during the hash). A failed verify needs nothing
more: the reservation is the failure. ``succeeded`` clears the pair and account
counters and gives the IP its slot back (a good login must not clear a
stuffing run, nor count towards one); ``cancel`` gives every slot back when no
verify ran (hasher busy). Because the count lives in Postgres and the check
and the count are one locked step, however many guesses arrive at once, on
however many processes, at most ``PAIR.free`` are verified for one account and
address before the lock, then one per lock expiry.

One address cannot lock the account for others: an attempt counts towards the
account counter only while its pair allowance is not used up, so one address
adds at most ``PAIR.free`` per pair window (at most twice that within one
account window, since windows do not align), below ``ACCOUNT.free``.

Keys are keyed hashes (HMAC-SHA-256 with a key derived from the master key,
per app) of the normalized email and of the (already keyed) IP hash: the table
stores neither, and a list of hashed emails matches nothing in it. The audit
log names an address that may have no account by the same hash
(``Names.account``). Counters decay when their window ends.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import asyncpg

from oneauth import metrics


@dataclass(frozen=True, slots=True)
class Limit:
    free: int
    cap_seconds: int


PAIR = Limit(free=5, cap_seconds=15 * 60)
IP = Limit(free=50, cap_seconds=15 * 60)
ACCOUNT = Limit(free=20, cap_seconds=60)
WINDOW_SECONDS = 15 * 60
BASE_LOCK_SECONDS = 4


@cache
def _key(master_key: str) -> bytes:
    # Derived, not configured, with a label of its own: these hashes say nothing
    # about the one-time-token MACs or the IP hashes made from the same key.
    return hashlib.sha256(b"oneauth/throttle-and-audit-subject|" + master_key.encode()).digest()


@dataclass(frozen=True, slots=True)
class Names:
    """One app's keyed names for throttle counters and audit targets."""

    master_key: str
    app_id: str

    def hash(self, kind: str, value: str) -> str:
        msg = f"{self.app_id}|{kind}|{value}".encode("utf-8", "surrogatepass")
        return hmac.new(_key(self.master_key), msg, hashlib.sha256).hexdigest()[:32]

    def account(self, email_normalized: str) -> str:
        """``acct:<h>``: an address in the audit log, whether or not it has an account."""
        return "acct:" + self.hash("acct", email_normalized)


@dataclass(frozen=True, slots=True)
class ThrottleKeys:
    pair: str
    ip: str | None
    account: str

    @classmethod
    def for_login(cls, names: Names, email_normalized: str, ip_hash: str | None) -> ThrottleKeys:
        account = names.account(email_normalized)
        ip = None if ip_hash is None else names.hash("ip", ip_hash)
        return cls(
            pair=f"pair:{account.removeprefix('acct:')}:{ip or '-'}",
            ip=None if ip is None else f"ip:{ip}",
            account=account,
        )

    def with_limits(self) -> dict[str, Limit]:
        items = {self.pair: PAIR, self.account: ACCOUNT}
        if self.ip is not None:
            items[self.ip] = IP
        return items


# --- the counter rows (shared with oneauth.mail.throttle) -----------------------


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    count: int
    age: float  # seconds since the window started
    locked_for: float  # seconds until the lock ends; <= 0 when not locked

    def current(self, window_seconds: int) -> int:
        """The count in the current window (0 once the window has ended)."""
        return 0 if self.expired(window_seconds) else self.count

    def expired(self, window_seconds: int) -> bool:
        return self.age >= window_seconds


# Creates missing rows and locks all of them, in key order (one order for every
# caller: no deadlocks), returning each row's latest committed state. The
# no-op update is what makes ON CONFLICT lock and reread an existing row.
_LOCK = """
INSERT INTO throttle AS t (key) SELECT k FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (key) DO UPDATE SET updated_at = t.updated_at
RETURNING key, failures,
    extract(epoch FROM now() - window_start)::float8 AS age,
    coalesce(extract(epoch FROM locked_until - now()), 0)::float8 AS locked_for
"""

_WRITE = """
UPDATE throttle AS t SET
    failures = n.failures,
    window_start = CASE WHEN n.restart THEN now() ELSE t.window_start END,
    locked_until = CASE WHEN n.lock_seconds > 0
                        THEN now() + make_interval(secs => n.lock_seconds)
                        ELSE t.locked_until END,
    updated_at = now()
FROM unnest($1::text[], $2::int[], $3::bool[], $4::int[]) AS n(key, failures, restart, lock_seconds)
WHERE t.key = n.key
"""

_LOCK_EXISTING = "SELECT key FROM throttle WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE"


@dataclass(frozen=True, slots=True)
class Count:
    """What ``write_counts`` stores for one key."""

    key: str
    count: int
    restart: bool  # a new window starts now
    lock_seconds: int = 0  # > 0: locked for that long from now


async def lock_counters(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, Counter]:
    """Lock the counter rows of ``keys`` (creating them) until the transaction ends."""
    rows = await conn.fetch(_LOCK, sorted(set(keys)))
    return {
        r["key"]: Counter(r["key"], r["failures"], float(r["age"]), float(r["locked_for"]))
        for r in rows
    }


async def write_counts(conn: asyncpg.Connection, counts: Sequence[Count]) -> None:
    """Store new counts for rows this transaction locked with ``lock_counters``."""
    if counts:
        await conn.execute(
            _WRITE,
            [c.key for c in counts],
            [c.count for c in counts],
            [c.restart for c in counts],
            [c.lock_seconds for c in counts],
        )


async def take_window(
    conn: asyncpg.Connection, key: str, *, limit: int, seconds: int
) -> int | None:
    """Count one request under ``key`` in a fixed window of ``seconds``: None while
    under ``limit``, else the seconds until the window ends (nothing counted). The
    row lock makes concurrent requests count one by one, never past the limit."""
    counter = (await lock_counters(conn, [key]))[key]
    current = counter.current(seconds)
    if current >= limit:
        return max(1, math.ceil(seconds - counter.age))
    await write_counts(conn, [Count(key, current + 1, restart=counter.expired(seconds))])
    return None


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def lock_seconds(attempts: int, limit: Limit) -> int:
    """The lock earned by the ``attempts``-th attempt of a window (0: none yet)."""
    over = attempts - limit.free
    if over < 0:
        return 0
    return min(BASE_LOCK_SECONDS * (1 << min(over, 20)), limit.cap_seconds)


# --- login attempts ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reservation:
    keys: ThrottleKeys
    allowed: bool
    retry_after: int | None = None  # when refused: seconds until the longest lock ends
    counted: tuple[str, ...] = field(default=())  # the counters this attempt added to


async def reserve(conn: asyncpg.Connection, keys: ThrottleKeys) -> Reservation:
    """Count one attempt, or refuse it if any of its counters is locked (P8).

    Call it in a short transaction of its own and verify the password only if
    ``allowed``, after that transaction commits: the row locks serialize
    concurrent attempts, so the check and the count cannot be separated.
    """
    limits = keys.with_limits()
    counters = await lock_counters(conn, list(limits))
    locked = [c.locked_for for c in counters.values() if c.locked_for > 0]
    if locked:
        metrics.THROTTLE_LOGIN.inc()
        return Reservation(keys, allowed=False, retry_after=_seconds(max(locked)))
    pair_before = counters[keys.pair].current(WINDOW_SECONDS)
    counts = []
    for key, limit in limits.items():
        if key == keys.account and pair_before >= PAIR.free:
            continue  # this address has had its share of the account counter
        counter = counters[key]
        attempts = counter.current(WINDOW_SECONDS) + 1
        counts.append(
            Count(
                key,
                attempts,
                restart=counter.expired(WINDOW_SECONDS),
                lock_seconds=lock_seconds(attempts, limit),
            )
        )
    await write_counts(conn, counts)
    return Reservation(keys, allowed=True, counted=tuple(c.key for c in counts))


_DELETE = "DELETE FROM throttle WHERE key = ANY($1::text[])"

# Deletes the counters in $1 and takes back one counted attempt from those in
# $2 (a lock that count earned goes with it), in one statement: the two sets are
# disjoint and already locked (_LOCK_EXISTING), so the order inside does not matter.
_CLEAR_AND_GIVE_BACK = """
WITH gone AS (DELETE FROM throttle WHERE key = ANY($1::text[]))
UPDATE throttle AS t SET
    failures = greatest(t.failures - 1, 0),
    locked_until = CASE WHEN t.failures - 1 < n.free THEN NULL ELSE t.locked_until END,
    updated_at = now()
FROM unnest($2::text[], $3::int[]) AS n(key, free)
WHERE t.key = n.key
"""


async def _give_back(
    conn: asyncpg.Connection, reservation: Reservation, *, delete: Sequence[str] = ()
) -> None:
    limits = reservation.keys.with_limits()
    back = [k for k in reservation.counted if k not in delete]
    touched = [*delete, *back]
    if not touched:
        return
    await conn.execute(_LOCK_EXISTING, touched)  # key order first, as in reserve
    await conn.execute(_CLEAR_AND_GIVE_BACK, list(delete), back, [limits[k].free for k in back])


async def succeeded(conn: asyncpg.Connection, reservation: Reservation) -> None:
    """The password was right: clear the pair and account counters, return the IP slot."""
    keys = reservation.keys
    await _give_back(conn, reservation, delete=[keys.pair, keys.account])


async def cancel(conn: asyncpg.Connection, reservation: Reservation) -> None:
    """No password was checked (hasher busy): return every slot the attempt took."""
    await _give_back(conn, reservation)


# --- second-factor attempts (issue 12) --------------------------------------------

# Per user, across every flow and the enrolment confirmations: a few free
# guesses per window, then the exponential lock. A 6-digit TOTP code with one
# step of drift either way is three codes of a million; at these rates
# guessing one takes years. (Each flow also dies after FLOW_ATTEMPTS.)
SECOND_FACTOR = Limit(free=5, cap_seconds=15 * 60)


@dataclass(frozen=True, slots=True)
class FactorReservation:
    key: str
    allowed: bool
    retry_after: int | None = None


async def reserve_second_factor(
    conn: asyncpg.Connection, names: Names, user_id: str
) -> FactorReservation:
    """Count one second-factor attempt of the user, or refuse it while locked.

    The counter row stays locked until the transaction ends, so one user's
    attempts (and a double submit of one code) are checked one at a time.
    """
    key = "mfa:" + names.hash("mfa", user_id)
    counter = (await lock_counters(conn, [key]))[key]
    if counter.locked_for > 0:
        metrics.THROTTLE_LOGIN.inc()
        return FactorReservation(key, allowed=False, retry_after=_seconds(counter.locked_for))
    attempts = counter.current(WINDOW_SECONDS) + 1
    await write_counts(
        conn,
        [
            Count(
                key,
                attempts,
                restart=counter.expired(WINDOW_SECONDS),
                lock_seconds=lock_seconds(attempts, SECOND_FACTOR),
            )
        ],
    )
    return FactorReservation(key, allowed=True)


async def second_factor_succeeded(conn: asyncpg.Connection, reservation: FactorReservation) -> None:
    """The factor was right: the user's count starts over."""
    await conn.execute(_DELETE, [reservation.key])
