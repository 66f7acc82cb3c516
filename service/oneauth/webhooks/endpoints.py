"""Webhook endpoints and their deliveries: the service (and its SQL) shared by
the admin API (``admin/app_api/webhooks.py``) and the CLI. Connections are in
the app's context (``services.router.enter(app)``).

An endpoint's secret (``whsec_...``) is returned by ``create`` and
``rotate_secret`` only, and stored sealed with the master key, bound to the
app and the endpoint id (W-H2): a sealed secret copied to another endpoint or
app does not open. Every change sends ``NOTIFY oneauth_webhook_endpoints`` so
each process's subscription cache (``events.SUBSCRIPTIONS``) drops the app.
"""

from __future__ import annotations

import json
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from oneauth.errors import ValidationFailed
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from oneauth.webhooks import signing, urls
from oneauth.webhooks.events import (
    DELIVERIES_CHANNEL,
    ENDPOINTS_CHANNEL,
    EVENT_TYPES,
    SUBSCRIPTIONS,
)

DeliveryStatus = Literal["pending", "sending", "delivered", "dead"]
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "sending", "delivered", "dead")
MAX_DESCRIPTION = 500


def seal_context(app_id: str, endpoint_id: str) -> str:
    return f"app:{app_id}/webhook-endpoint/{endpoint_id}"


def open_secret(box: SecretBox, app_id: str, endpoint_id: str, sealed: str) -> str:
    return box.open(sealed, context=seal_context(app_id, endpoint_id)).decode()


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    replay_of: int | None
    created_at: datetime
    delivered_at: datetime | None


_ENDPOINT_COLUMNS = (
    "id, url, event_types, enabled, description, created_at, updated_at, secret_rotated_at"
)
_DELIVERY_COLUMNS = (
    "id, event_id, endpoint_id, event_type, payload, status, attempts, next_attempt_at,"
    " last_status, last_error, replay_of, created_at, delivered_at"
)


def _endpoint(r: asyncpg.Record) -> Endpoint:
    return Endpoint(
        id=r["id"],
        url=r["url"],
        event_types=tuple(r["event_types"]),
        enabled=r["enabled"],
        description=r["description"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        secret_rotated_at=r["secret_rotated_at"],
    )


def _delivery(r: asyncpg.Record) -> Delivery:
    raw = r["payload"]
    return Delivery(
        id=r["id"],
        event_id=r["event_id"],
        endpoint_id=r["endpoint_id"],
        event_type=r["event_type"],
        payload=json.loads(raw) if isinstance(raw, str) else raw,
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_status=r["last_status"],
        last_error=r["last_error"],
        replay_of=r["replay_of"],
        created_at=r["created_at"],
        delivered_at=r["delivered_at"],
    )


# --- validation ----------------------------------------------------------------------


def valid_url(settings: Settings, url: str) -> str:
    try:
        urls.check_url(settings, url)
    except urls.UrlRefused as exc:
        raise ValidationFailed(str(exc), extra={"field": "url"}) from None
    return url


def valid_event_types(event_types: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(event_types))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"unknown event type {unknown[0][:80]!r} (see GET .../webhooks/event-types)",
            extra={"field": "event_types"},
        )
    if not 1 <= len(wanted) <= 64:
        raise ValidationFailed(
            "subscribe to at least one event type", extra={"field": "event_types"}
        )
    return wanted


def valid_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise ValidationFailed("the description is too long", extra={"field": "description"})
    return description


async def _changed(conn: asyncpg.Connection, app_id: str) -> None:
    # Local drop now; every process (this one again) drops it at commit too.
    SUBSCRIPTIONS.on_change(app_id)
    await conn.execute("SELECT pg_notify($1, $2)", ENDPOINTS_CHANNEL, app_id)


# --- endpoints -----------------------------------------------------------------------


async def create(
    conn: asyncpg.Connection,
    box: SecretBox,
    settings: Settings,
    app_id: str,
    *,
    url: str,
    event_types: Iterable[str],
    description: str = "",
    enabled: bool = True,
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret, which is shown this once (W-H2)."""
    endpoint_id = "whe_" + _secrets.token_urlsafe(16)
    secret = signing.new_secret()
    row = await conn.fetchrow(
        "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types, enabled, description)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_ENDPOINT_COLUMNS}",
        endpoint_id,
        valid_url(settings, url),
        box.seal(secret.encode(), context=seal_context(app_id, endpoint_id)),
        valid_event_types(event_types),
        enabled,
        valid_description(description),
    )
    await _changed(conn, app_id)
    return _endpoint(row), secret


async def get(conn: asyncpg.Connection, endpoint_id: str) -> Endpoint | None:
    row = await conn.fetchrow(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    return None if row is None else _endpoint(row)


async def list_page(
    conn: asyncpg.Connection, *, after: tuple[datetime, str] | None = None, limit: int = 50
) -> list[Endpoint]:
    """Endpoints in creation order, keyset after ``(created_at, id)``.

    Two statements, not one with ``$1 IS NULL OR ...``: a generic plan of the
    OR-ed form cannot start the index scan at the cursor."""
    if after is None:
        rows = await conn.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id LIMIT $1",
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
            " WHERE (created_at, id) > ($1, $2) ORDER BY created_at, id LIMIT $3",
            after[0],
            after[1],
            limit,
        )
    return [_endpoint(r) for r in rows]


async def update(
    conn: asyncpg.Connection,
    settings: Settings,
    app_id: str,
    endpoint_id: str,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
) -> Endpoint | None:
    row = await conn.fetchrow(
        "UPDATE webhook_endpoints SET url = coalesce($2, url),"
        " event_types = coalesce($3, event_types), enabled = coalesce($4, enabled),"
        " description = coalesce($5, description), updated_at = now()"
        f" WHERE id = $1 RETURNING {_ENDPOINT_COLUMNS}",
        endpoint_id,
        None if url is None else valid_url(settings, url),
        None if event_types is None else valid_event_types(event_types),
        enabled,
        None if description is None else valid_description(description),
    )
    if row is None:
        return None
    await _changed(conn, app_id)
    return _endpoint(row)


async def delete(conn: asyncpg.Connection, app_id: str, endpoint_id: str) -> bool:
    """Delete the endpoint and its deliveries (pending ones are never sent)."""
    done = await conn.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING true", endpoint_id
    )
    if done:
        await _changed(conn, app_id)
    return bool(done)


async def rotate_secret(
    conn: asyncpg.Connection, box: SecretBox, app_id: str, endpoint_id: str
) -> str | None:
    """A new secret (shown once); deliveries from now on are signed with it."""
    secret = signing.new_secret()
    done = await conn.fetchval(
        "UPDATE webhook_endpoints SET secret_sealed = $2, secret_rotated_at = now(),"
        " updated_at = now() WHERE id = $1 RETURNING true",
        endpoint_id,
        box.seal(secret.encode(), context=seal_context(app_id, endpoint_id)),
    )
    return secret if done else None


# --- deliveries ----------------------------------------------------------------------


async def list_deliveries(
    conn: asyncpg.Connection,
    endpoint_id: str,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """One endpoint's deliveries, newest first, keyset before ``id``."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed(
            f"status is one of {', '.join(DELIVERY_STATUSES)}", extra={"field": "status"}
        )
    # Fixed fragments, no OR-ed optional filters (the index scan starts at the cursor).
    where = ["endpoint_id = $1"]
    args: list[object] = [endpoint_id]
    if status is not None:
        args.append(status)
        where.append(f"status = ${len(args)}")
    if before is not None:
        args.append(before)
        where.append(f"id < ${len(args)}")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {' AND '.join(where)}"
        f" ORDER BY id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_delivery(r) for r in rows]


async def get_delivery(conn: asyncpg.Connection, delivery_id: int) -> Delivery | None:
    row = await conn.fetchrow(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1", delivery_id
    )
    return None if row is None else _delivery(row)


async def replay(conn: asyncpg.Connection, app_id: str, delivery_id: int) -> Delivery | None:
    """Queue the delivery's event to its endpoint again: a new row (same event id,
    so the receiver can tell it is the same event; ``replay_of`` the original)."""
    row = await conn.fetchrow(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, payload, replay_of)"
        " SELECT event_id, endpoint_id, event_type, payload, id FROM webhook_deliveries"
        f" WHERE id = $1 RETURNING {_DELIVERY_COLUMNS}",
        delivery_id,
    )
    if row is None:
        return None
    await conn.execute("SELECT pg_notify($1, $2)", DELIVERIES_CHANNEL, app_id)
    return _delivery(row)
