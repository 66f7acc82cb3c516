"""The app's append-only audit log (A1).

Rows are written through the caller's connection, so they commit or roll back
with the change they describe. Never pass secrets in ``details``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
import psycopg

Outcome = Literal["success", "failure", "denied", "error"]


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Who is asking, as far as the audit log needs to know."""

    request_id: str | None = None
    ip: str | None = None
    ip_hash: str | None = None
    user_agent: str | None = None


SYSTEM = RequestMeta()

_INSERT = (
    "INSERT INTO audit_log (event, outcome, actor_type, actor_id, target_type, target_id,"
    " request_id, ip_hash, user_agent, details) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10::jsonb)"
)


def row(
    event: str,
    outcome: Outcome,
    meta: RequestMeta,
    *,
    actor_type: str | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[Any, ...]:
    """Arguments of one audit insert, for ``record`` or for batching with executemany."""
    return (
        event,
        outcome,
        actor_type,
        actor_id,
        target_type,
        target_id,
        meta.request_id,
        meta.ip_hash,
        (meta.user_agent or "")[:512] or None,
        json.dumps(details or {}, separators=(",", ":")),
    )


async def record(
    conn: asyncpg.Connection,
    event: str,
    outcome: Outcome,
    meta: RequestMeta,
    **fields: Any,
) -> None:
    await conn.execute(_INSERT, *row(event, outcome, meta, **fields))


INSERT_SQL = _INSERT
# The same insert for psycopg (the CLI), whose placeholders are %s.
_INSERT_PSYCOPG = re.sub(r"\$\d+", "%s", _INSERT)


def record_sync(
    conn: psycopg.Connection[Any], event: str, outcome: Outcome, meta: RequestMeta, **fields: Any
) -> None:
    """``record`` for the CLI's psycopg connection, in the app's context (operator actions)."""
    conn.execute(_INSERT_PSYCOPG, row(event, outcome, meta, **fields))
