"""What a signed-in user may do with their own account, for the JSON API and the hosted
Security page alike: list and end sign-ins, list and withdraw consents.

Changes are audited here (actor: the user), so both skins record the same events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from oneauth import audit
from oneauth.account import repo
from oneauth.oauth import consents
from oneauth.sessions import repo as sessions
from oneauth.web import browser_session

__all__ = [
    "ConsentItem",
    "SessionItem",
    "end_session",
    "list_consents",
    "list_sessions",
    "withdraw",
]


@dataclass(frozen=True, slots=True)
class SessionItem:
    id: uuid.UUID
    kind: str  # "browser": a hosted-page sign-in; "app": a first-party API sign-in
    client_id: str | None
    client_name: str | None
    amr: list[str]
    auth_time: datetime
    created_at: datetime
    last_seen_at: datetime
    user_agent: str | None
    current: bool  # the session the request was made with


@dataclass(frozen=True, slots=True)
class ConsentItem:
    client_id: str
    client_name: str | None
    scopes: list[str]
    granted_at: datetime
    updated_at: datetime


async def list_sessions(
    conn: asyncpg.Connection, user_id: uuid.UUID, *, current: uuid.UUID | None = None
) -> list[SessionItem]:
    return [
        SessionItem(
            id=r["id"],
            kind=r["kind"],
            client_id=r["client_id"],
            client_name=r["client_name"],
            amr=list(r["amr"]),
            auth_time=r["auth_time"],
            created_at=r["created_at"],
            last_seen_at=r["last_seen_at"],
            user_agent=r["user_agent"],
            current=r["id"] == current,
        )
        for r in await repo.live_sessions(conn, user_id)
    ]


async def end_session(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    meta: audit.RequestMeta,
) -> bool:
    """End one of the user's sign-ins (a browser session with the token sessions it
    started). False if it is not a live session of this user (in this app)."""
    kind = await repo.session_kind(conn, user_id, session_id)
    if kind is None:
        return False
    if kind == "browser":
        await browser_session.end(conn, session_id, reason="ended_by_user")
    else:
        await sessions.revoke_session(conn, session_id, reason="ended_by_user")
    await audit.record(
        conn,
        "session.end",
        "success",
        meta,
        actor_type="user",
        actor_id=str(user_id),
        target_type="browser_session" if kind == "browser" else "session",
        target_id=str(session_id),
        details={"via": "account"},
    )
    return True


async def list_consents(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ConsentItem]:
    return [
        ConsentItem(
            client_id=r["client_id"],
            client_name=r["client_name"],
            scopes=list(r["scopes"]),
            granted_at=r["granted_at"],
            updated_at=r["updated_at"],
        )
        for r in await consents.list_active(conn, user_id)
    ]


async def withdraw(
    conn: asyncpg.Connection, user_id: uuid.UUID, client_id: str, meta: audit.RequestMeta
) -> int | None:
    """Withdraw a consent (ends that client's sessions of the user, voids its unexchanged
    codes); how many sessions ended, or None if the user had no consent to it."""
    ended = await consents.revoke(conn, user_id, client_id)
    if ended is not None:
        await audit.record(
            conn,
            "consent.revoke",
            "success",
            meta,
            actor_type="user",
            actor_id=str(user_id),
            target_type="client",
            target_id=client_id,
            details={"sessions_ended": ended},
        )
    return ended
