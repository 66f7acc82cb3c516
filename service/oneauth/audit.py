"""The app's append-only audit log (A1).

Rows are written through the caller's connection, so they commit or roll back
with the change they describe. Never pass secrets in ``details``.

Security events (a replayed refresh token or code, a login refused by a
throttle lock, an emergency key rotation) are also written to the log stream
from here, so alerting sees them without reading every app's table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import psycopg

from oneauth import logs

if TYPE_CHECKING:
    from oneauth.apps.models import AppRecord
    from oneauth.db.groupcommit import GroupCommit

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
_INSERT_SYNC = _INSERT.split(" VALUES ")[0] + " VALUES (" + ",".join(["%s"] * 10) + ")"

# Events that are security events whatever their details.
SECURITY_EVENTS = frozenset(
    {
        "token.refresh_reuse",
        "token.code_reuse",
        "keys.emergency_rotation",
        # A passkey's signature counter went backwards: a cloned authenticator.
        "mfa.webauthn_counter_regression",
    }
)


def is_security_event(event: str, outcome: Outcome, details: dict[str, Any] | None) -> bool:
    if event in SECURITY_EVENTS:
        return True
    # A sign-in refused because a throttle lock is in force: a lockout.
    return outcome == "denied" and (details or {}).get("reason") == "throttled"


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
    _maybe_log(event, outcome, meta, fields)


async def record_committed(
    writes: GroupCommit,
    app: AppRecord,
    event: str,
    outcome: Outcome,
    meta: RequestMeta,
    **fields: Any,
) -> None:
    """``record`` for work that opened no unit of its own: the row is written in a
    group commit (oneauth.db.groupcommit) and is committed when this returns."""
    await writes.write(app, row(event, outcome, meta, **fields))
    _maybe_log(event, outcome, meta, fields)


def record_sync(
    conn: psycopg.Connection[Any],
    event: str,
    outcome: Outcome,
    meta: RequestMeta,
    *,
    app_id: str,
    **fields: Any,
) -> None:
    """``record`` for the CLI's psycopg connection, in the app's context."""
    conn.execute(_INSERT_SYNC, row(event, outcome, meta, **fields))
    _maybe_log(event, outcome, meta, {"app_id": app_id, **fields})


def _maybe_log(event: str, outcome: Outcome, meta: RequestMeta, fields: dict[str, Any]) -> None:
    # In a request the gate has bound app_id to the log context already.
    details = fields.get("details")
    if not is_security_event(event, outcome, details):
        return
    safe_details = {
        key: value
        for key, value in (details or {}).items()
        if key.lower() not in logs.SECRET_KEYS and "email" not in key.lower()
    }
    logs.security_event(
        event,
        outcome=outcome,
        request_id=meta.request_id,
        ip_hash=meta.ip_hash,
        **{k: v for k, v in fields.items() if k != "details" and v is not None},
        details=safe_details,
    )


INSERT_SQL = _INSERT
