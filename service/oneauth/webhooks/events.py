"""Event catalogue and ``emit``: the transactional outbox side (SECURITY.md W-H1).

``await webhooks.emit(conn, app, "user.created", {"user_id": ...})`` is called
at a change point with the connection of the change's own transaction: the
delivery rows (one per enabled endpoint subscribed to the type) commit or roll
back with the change. Nothing is sent here; the worker sends after commit, so
a slow or dead endpoint never delays the request (a sign-in, a signup).

The hot path stays free for apps without webhooks: which event types an app's
enabled endpoints subscribe to is cached per process (``SUBSCRIPTIONS``),
dropped on ``NOTIFY oneauth_webhook_endpoints, '<app_id>'`` (sent by every
endpoint change) and bounded by a TTL when notices are lost. An app with no
endpoint subscribed to the type pays no query at all; otherwise one INSERT ...
SELECT (plus the NOTIFY that wakes the workers) in one round trip.

Payloads: ``{"id", "type", "timestamp", "app_id", "data"}``. ``data`` holds ids
(user, org, session family, invitation), never a secret or token, and an email
address only where the event is about that address (``user.created``,
``user.email_changed``): a receiver that needs more asks the admin API.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.db import templates

# The catalogue (README "Webhooks"): type -> what happened and what ``data`` holds.
EVENT_TYPES: Final[Mapping[str, str]] = {
    "user.created": "a user signed up, was created by an admin or by federation (JIT);"
    " data: user_id, email, via",
    "user.deleted": "a user was deleted; data: user_id",
    "user.disabled": "a user was disabled; data: user_id",
    "user.email_changed": "a user's email address changed; data: user_id, email",
    "user.password_changed": "a user's password was changed or reset; data: user_id, via",
    "session.revoked": "sessions were ended (sign-out, revocation); data: user_id, session_id?,"
    " reason",
    "org.created": "an organization was created; data: org_id, slug",
    "org.deleted": "an organization was deleted; data: org_id",
    "org.member_added": "a user joined an organization; data: org_id, user_id, via",
    "org.member_removed": "a user left or was removed from an organization; data: org_id, user_id",
    "invitation.accepted": "an invitation was accepted; data: org_id, invitation_id, user_id",
}

ENDPOINTS_CHANNEL: Final = "oneauth_webhook_endpoints"  # endpoint changes (cache)
DELIVERIES_CHANNEL: Final = "oneauth_webhooks"  # deliveries queued (workers)


def webhooks_schema_version() -> int:
    """The app schema version from which an app has the webhook tables."""
    return next(t.version for t in templates.load("app") if t.name == "webhooks")


class SubscriptionCache:
    """Per app: the event types its enabled endpoints subscribe to.

    A stale "subscribed" costs one INSERT that inserts nothing; a stale "not
    subscribed" would drop events, so a lookup that raced with a change notice
    is not stored (generation counter), and the TTL bounds lost notices.
    """

    def __init__(self, ttl: float = 60.0, max_entries: int = 50_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._generation = 0

    def on_change(self, app_id: str | None) -> None:
        self._generation += 1
        if app_id is None:
            self._cache.clear()
        else:
            self._cache.pop(app_id, None)

    async def types(self, conn: asyncpg.Connection, app_id: str) -> frozenset[str]:
        now = time.monotonic()
        hit = self._cache.get(app_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        rows = await conn.fetch(
            "SELECT DISTINCT t FROM webhook_endpoints, unnest(event_types) AS t WHERE enabled"
        )
        found = frozenset(str(r[0]) for r in rows)
        if generation == self._generation:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[app_id] = (now + self._ttl, found)
        return found


SUBSCRIPTIONS = SubscriptionCache()

_MIN_VERSION: int | None = None

# One round trip: the rows, and the workers' wake-up only if there are any.
_EMIT = """
WITH ins AS (
    INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, payload)
    SELECT $1, e.id, $2, $3::jsonb FROM webhook_endpoints e
    WHERE e.enabled AND $2 = ANY (e.event_types)
    RETURNING 1
)
SELECT count(*) AS n, CASE WHEN count(*) > 0 THEN pg_notify($4, $5)::text END AS notified
FROM ins
"""


def new_event_id() -> str:
    return "evt_" + secrets.token_urlsafe(18)


def payload(event_id: str, app_id: str, event_type: str, data: Mapping[str, Any]) -> str:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"id": event_id, "type": event_type, "timestamp": ts, "app_id": app_id, "data": data}
    return json.dumps(body, separators=(",", ":"), default=str)


def app_of(conn: asyncpg.Connection) -> AppRecord:
    """The app whose transaction ``conn`` is in (set by ``Router.enter`` and the
    CLI's ``async_app_transaction``), for services handed only a connection."""
    app = getattr(conn, "oneauth_entered", {}).get("app")
    if not isinstance(app, AppRecord):
        raise RuntimeError("this connection is not in an app's transaction (use the router)")
    return app


async def emit(
    conn: asyncpg.Connection, app: AppRecord, event_type: str, data: Mapping[str, Any]
) -> int:
    """Queue ``event_type`` for every subscribed enabled endpoint of ``app``, in
    the caller's transaction; the number of deliveries queued (W-H1)."""
    global _MIN_VERSION
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if _MIN_VERSION is None:
        _MIN_VERSION = webhooks_schema_version()
    if app.schema_version < _MIN_VERSION:
        return 0  # not migrated yet: no table, and no endpoint either
    if event_type not in await SUBSCRIPTIONS.types(conn, app.app_id):
        return 0
    event_id = new_event_id()
    body = payload(event_id, app.app_id, event_type, data)
    row = await conn.fetchrow(_EMIT, event_id, event_type, body, DELIVERIES_CHANNEL, app.app_id)
    return 0 if row is None else int(row["n"])
