"""The app's outbox (SQL): queue, claim, mark. Connections are in the app's context.

A message is queued in the same transaction as the token it carries and a
``NOTIFY oneauth_outbox, '<app_id>'`` wakes the delivery workers at commit.
Secrets (links, codes) are sealed with the master key, bound to the app, the
kind and the recipient, and dropped (``secrets_sealed = NULL``) once the row is
sent, expired or dead.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from oneauth.identity.users import stored_email_key
from oneauth.secretbox import SecretBox

CHANNEL = "oneauth_outbox"


def seal_context(app_id: str, kind: str, recipient: str) -> str:
    return f"app:{app_id}/outbox/{kind}/{stored_email_key(recipient)}"


def seal(box: SecretBox, app_id: str, kind: str, recipient: str, values: dict[str, str]) -> str:
    data = json.dumps(values, separators=(",", ":")).encode()
    return box.seal(data, context=seal_context(app_id, kind, recipient))


def open_sealed(
    box: SecretBox, app_id: str, kind: str, recipient: str, sealed: str
) -> dict[str, str]:
    data = json.loads(box.open(sealed, context=seal_context(app_id, kind, recipient)))
    return {str(k): str(v) for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class Draft:
    """A message to queue: template kind, non-secret values, sealed secrets."""

    kind: str
    context: dict[str, Any]
    sealed: str | None
    max_attempts: int
    # Seconds after which the message is not worth sending (its link expired).
    ttl: int | None = None

    @property
    def context_json(self) -> str:
        return json.dumps(self.context, separators=(",", ":"))


def draft(
    box: SecretBox,
    app_id: str,
    kind: str,
    recipient: str,
    *,
    context: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    max_attempts: int,
    ttl: int | None = None,
) -> Draft:
    sealed = seal(box, app_id, kind, recipient, secrets) if secrets else None
    return Draft(kind, context or {}, sealed, max_attempts, ttl)


# Used by queue() here and, inlined, by one_time.issue_for_address's single statement.
INSERT_COLUMNS = "kind, recipient, context, secrets_sealed, max_attempts, not_after"


async def queue(conn: asyncpg.Connection, app_id: str, recipient: str, d: Draft) -> int:
    """Queue one message (and wake the workers at commit)."""
    row_id = await conn.fetchval(
        f"INSERT INTO outbox ({INSERT_COLUMNS}) VALUES ($1, $2, $3::jsonb, $4, $5,"
        " now() + make_interval(secs => $6)) RETURNING id",
        d.kind,
        recipient,
        d.context_json,
        d.sealed,
        d.max_attempts,
        d.ttl,
    )
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, app_id)
    return int(row_id)


# --- the worker's side ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    kind: str
    recipient: str
    context: dict[str, Any]
    secrets_sealed: str | None
    attempts: int
    max_attempts: int
    created_at: datetime
    claim_id: uuid.UUID


_CLAIM = """
WITH due AS (
    SELECT id FROM outbox
    WHERE (status = 'pending' AND next_attempt_at <= now())
       OR (status = 'sending' AND lease_until <= now())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET status = 'sending', attempts = o.attempts + 1,
       lease_until = now() + make_interval(secs => $2), claim_id = $3
FROM due WHERE o.id = due.id
RETURNING o.id, o.kind, o.recipient, o.context, o.secrets_sealed, o.attempts, o.max_attempts,
          o.created_at
"""

# Rows that must not be (re)sent: their link expired, or the last permitted
# attempt's worker died mid-send (outcome unknown). Secrets are dropped.
_RETIRE = """
UPDATE outbox SET
    status = CASE WHEN not_after <= now() THEN 'expired' ELSE 'dead' END,
    last_error = CASE WHEN not_after <= now() THEN 'expired before delivery'
                      ELSE 'worker lost the lease on the last attempt' END,
    secrets_sealed = NULL, lease_until = NULL, claim_id = NULL
WHERE (status = 'pending' AND next_attempt_at <= now() AND not_after <= now())
   OR (status = 'sending' AND lease_until <= now()
       AND (not_after <= now() OR attempts >= max_attempts))
RETURNING id, kind, status, last_error
"""


async def retire(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(_RETIRE))


async def claim(
    conn: asyncpg.Connection, *, limit: int, lease_seconds: float, claim_id: uuid.UUID
) -> list[Claimed]:
    rows = await conn.fetch(_CLAIM, limit, lease_seconds, claim_id)
    return [
        Claimed(
            id=r["id"],
            kind=r["kind"],
            recipient=r["recipient"],
            context=json.loads(r["context"]) if isinstance(r["context"], str) else r["context"],
            secrets_sealed=r["secrets_sealed"],
            attempts=r["attempts"],
            max_attempts=r["max_attempts"],
            created_at=r["created_at"],
            claim_id=claim_id,
        )
        for r in rows
    ]


async def mark_sent(conn: asyncpg.Connection, ids: list[int]) -> int:
    """Idempotent: marking twice, or after another worker's claim, changes nothing wrong.

    A late mark wins over a retry or dead letter: the server did accept the message.
    """
    status = await conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = coalesce(sent_at, now()),"
        " secrets_sealed = NULL, lease_until = NULL, claim_id = NULL, last_error = NULL"
        " WHERE id = ANY($1::bigint[]) AND status <> 'sent'",
        ids,
    )
    return int(status.split()[-1])


async def mark_failed(
    conn: asyncpg.Connection,
    row_id: int,
    claim_id: uuid.UUID,
    *,
    error: str,
    retry_in: float | None,
) -> str | None:
    """Schedule a retry (``retry_in`` seconds) or dead-letter (``None``, or no attempts left).

    Only the current claim may do this; returns the new status, or None if the
    claim was lost (another worker took the row after the lease ran out).
    """
    status = await conn.fetchval(
        "UPDATE outbox SET"
        " status = CASE WHEN $3::float8 IS NULL OR attempts >= max_attempts"
        "   THEN 'dead' ELSE 'pending' END,"
        " secrets_sealed = CASE WHEN $3::float8 IS NULL OR attempts >= max_attempts"
        "   THEN NULL ELSE secrets_sealed END,"
        " next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0)),"
        " last_error = left($4, 500), lease_until = NULL, claim_id = NULL"
        " WHERE id = $1 AND claim_id = $2 AND status = 'sending' RETURNING status",
        row_id,
        claim_id,
        retry_in,
        error,
    )
    return None if status is None else str(status)


async def seconds_until_due(conn: asyncpg.Connection) -> float | None:
    """When this app next has work: the earliest retry or lease end; None if idle."""
    value = await conn.fetchval(
        "SELECT extract(epoch FROM least("
        " (SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'),"
        " (SELECT min(lease_until) FROM outbox WHERE status = 'sending')) - now())"
    )
    return None if value is None else max(0.0, float(value))
