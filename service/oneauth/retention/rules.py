"""What retention deletes in one app, and the SQL that does it (R1-R4).

Every rule names a table, the time from which a row is dead (an SQL
expression over the row, indexed by sql/app/0019 or earlier), an optional
condition that must hold too (finished messages only), and how long a dead
row is still kept. A rule deletes in bounded batches, each its own statement:

    DELETE FROM t WHERE ctid IN (SELECT ctid FROM t WHERE <cond> AND <expr> < cutoff LIMIT n)

and after a visit tells when its earliest kept row becomes prunable
(``min(<expr>) + keep``), which the worker records as the app's next due time.

Why the kept periods (R2):

* sessions and browser sessions: 7 days after their absolute expiry or their
  revocation, whichever comes first (the admin API still shows recent ones;
  a token of a revoked family is refused either way). Their refresh tokens
  and authorization codes go with them (ON DELETE CASCADE).
* refresh tokens of a live family: a used token is the family's replay
  detector (presenting it again revokes the family, S3), so it is kept 30 days
  past its own expiry; a live family's current token is never touched.
* codes, one-time tokens, flows, federation requests, assertion jtis, WebAuthn
  challenges: one hour after they expire (single-use checks only matter until
  then; the hour covers clock skew and leeway).
* throttle counters: one day after both their window and their lock ended
  (windows and locks are at most 15 minutes).
* sent, dead and expired mail, delivered and dead webhook deliveries: the
  history period (7 days by default); pending and leased rows are never pruned.
* admin idempotency keys: 2 days (a key counts for 24 hours).

Audit rows follow the app's ``audit_retention_days`` and the audit chain's rules
(``Sealer.prune_app``: a signed ``prune`` checkpoint first, then ``audit_prune``),
not these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rule:
    name: str  # as reported (``oneauth retention run``), one per table
    table: str
    dead_from: str  # SQL: when the row became dead
    keep: timedelta
    condition: str = "true"

    @property
    def delete_sql(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE ctid IN (SELECT ctid FROM {self.table}"
            f" WHERE {self.condition} AND {self.dead_from} < $1 LIMIT $2)"
        )

    @property
    def due_sql(self) -> str:
        # Without the condition: a pending message may be sent (an UPDATE, which
        # no counter watches) after this visit, and must not wait for another
        # write to be pruned. A still-pending row at its due time costs one visit.
        return f"SELECT min({self.dead_from}) FROM {self.table}"


def rules(history: timedelta) -> tuple[Rule, ...]:
    """Every rule, parents before children (a session's cascade goes first)."""
    return (
        Rule("sessions", "sessions", "least(expires_at, revoked_at)", 7 * DAY),
        Rule("refresh_tokens", "refresh_tokens", "expires_at", 30 * DAY),
        Rule("browser_sessions", "browser_sessions", "least(expires_at, revoked_at)", 7 * DAY),
        Rule("authorization_codes", "authorization_codes", "expires_at", HOUR),
        Rule("client_assertion_jtis", "client_assertion_jtis", "expires_at", HOUR),
        Rule("one_time_tokens", "one_time_tokens", "expires_at", HOUR),
        Rule("auth_flows", "auth_flows", "expires_at", HOUR),
        Rule("webauthn_challenges", "webauthn_challenges", "expires_at", HOUR),
        Rule("federation_requests", "federation_requests", "expires_at", HOUR),
        Rule("federation_pending_links", "federation_pending_links", "expires_at", HOUR),
        Rule("federation_codes", "federation_codes", "expires_at", HOUR),
        Rule("throttle", "throttle", "greatest(updated_at, locked_until)", DAY),
        Rule(
            "outbox",
            "outbox",
            "created_at",
            history,
            condition="status IN ('sent', 'dead', 'expired')",
        ),
        Rule(
            "webhook_deliveries",
            "webhook_deliveries",
            "created_at",
            history,
            condition="status IN ('delivered', 'dead')",
        ),
        Rule("admin_idempotency", "admin_idempotency", "created_at", 2 * DAY),
    )


TABLES = tuple(r.table for r in rules(DAY))

# Rows ever inserted in each app's prunable tables (the cumulative statistics,
# readable without any right on the tables; see oneauth.mail.worker). A new row
# may die sooner than what the last visit saw, so a moved counter makes the app
# due. Inserts only: one function call per table (at 2,000 apps x 15 tables the
# three counters cost 340 ms a cycle), and the worker's own deletes do not make
# the app due again. An UPDATE that makes a row die sooner (a revocation) is
# caught at the next insert or the recorded due time (the row's expiry).
CHANGES_SQL = (
    "SELECT n.nspname AS schemaname, sum(pg_stat_get_tuples_inserted(c.oid))::bigint AS changes"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p') GROUP BY n.nspname"
)


async def prune_batch(conn: asyncpg.Connection, rule: Rule, now: datetime, limit: int) -> int:
    """Delete at most ``limit`` dead rows of one rule; how many were deleted."""
    status = await conn.execute(rule.delete_sql, now - rule.keep, limit)
    return int(status.rsplit(" ", 1)[-1])


async def next_due(conn: asyncpg.Connection, rule: Rule) -> datetime | None:
    """When the earliest kept row of this rule becomes prunable (None: no such row)."""
    first: datetime | None = await conn.fetchval(rule.due_sql)
    return None if first is None else first + rule.keep


async def oldest_audit(conn: asyncpg.Connection) -> datetime | None:
    value: datetime | None = await conn.fetchval("SELECT min(occurred_at) FROM audit_log")
    return value
