"""Sessions and refresh tokens of one app (SQL). Connections are in the app's context.

A session is one login. Its refresh tokens are one family: each use rotates
the token (the old one is marked used, a new one issued); presenting a used
token again is a replay and revokes the session with every token in it
(RFC 9700 section 4.14.2, ASVS 10.4.5). The rotation is one UPDATE with a
``used_at IS NULL`` guard, so of two concurrent uses at most one succeeds.
The loser of such a race is not a thief: within ``REUSE_GRACE_SECONDS`` of the
rotation, and while the successor is unused, a repeat gets that same successor
(``Rotated`` with ``retried``: a retry after a lost response, or a second tab,
stays signed in; ``oneauth.sessions.successor`` keeps it so that only the
presenter of the old token can open it); later, or once the successor was used,
it is a replay (S1). Whatever changes a family locks its session row first, then
its tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg

from oneauth import webhooks
from oneauth.orgs.claims import roles_of
from oneauth.sessions import successor as successors

REFRESH_PREFIX = "ort_"  # recognisable in leaked-secret scanners

# Two tabs refreshing at once, or a retry after a lost response, present the
# token that another request has just rotated. For this long after the
# rotation, and only while the successor has not been used, they get the same
# successor again (the family still has one live token: it is one secret, not
# a second one). A thief presenting a stolen token in this window gets it too;
# whichever of the two then uses it first moves the family on, and the other's
# later use is a replay that revokes the family (as when a thief rotates
# first). After the window, or once the family moved on, the old token is a
# replay and revokes the family. Rotations from before the successor was kept
# (and a repeat asking for another scope) get invalid_grant (``Superseded``).
REUSE_GRACE_SECONDS = 10


def new_refresh_token() -> tuple[str, bytes]:
    """A 256-bit opaque token and the SHA-256 that is stored instead of it."""
    raw = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return raw, hash_token(raw)


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    client_id: str
    amr: list[str]
    auth_time: datetime
    expires_at: datetime
    # The organization this family's tokens are for now (issue 13); a refresh
    # naming another org the user belongs to switches it.
    org_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    """What a new session is made of (``create_session``, ``start_with_refresh``).
    ``auth_time`` is when the user authenticated (None: now); a session started
    from an earlier sign-in (authorization code flow) keeps that time."""

    user_id: uuid.UUID
    client_id: str
    amr: list[str]
    absolute_ttl: int
    ip_hash: str | None
    user_agent: str | None
    auth_time: datetime | None = None

    def values(self) -> tuple[object, ...]:
        """$1-$7 of both statements."""
        agent = (self.user_agent or "")[:512] or None
        return (
            self.user_id,
            self.client_id,
            self.amr,
            self.absolute_ttl,
            self.ip_hash,
            agent,
            self.auth_time,
        )


async def create_session(
    conn: asyncpg.Connection, new: NewSession, *, org_id: str | None = None
) -> Session:
    """``org_id``: the organization its tokens are for (checked by the caller,
    ``orgs.claims``)."""
    row = await conn.fetchrow(
        "INSERT INTO sessions (user_id, client_id, amr, auth_time, expires_at, ip_hash,"
        " user_agent, org_id) VALUES ($1, $2, $3, coalesce($7, now()),"
        " now() + make_interval(secs => $4), $5, $6, $8)"
        " RETURNING id, user_id, client_id, amr, auth_time, expires_at, org_id",
        *new.values(),
        org_id,
    )
    assert row is not None
    return Session(*row.values())


async def issue_refresh(
    conn: asyncpg.Connection, session: Session, *, scope: str, idle_ttl: int
) -> str:
    raw, digest = new_refresh_token()
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, client_id, scope, expires_at)"
        " VALUES ($1, $2, $3, $4, least(now() + make_interval(secs => $5), $6))",
        digest,
        session.id,
        session.client_id,
        scope,
        idle_ttl,
        session.expires_at,
    )
    return raw


# A sign-in without an org and without permissions in one round trip: the
# session, its first refresh token, and the user's app roles for the access
# token. With many apps per connection each statement is planned again on every
# call, so three statements cost three plans (``bench/login``). No parameter
# switches a part off (see oneauth.orgs.claims): one fixed text, one generic plan.
_START = f"""
WITH s AS (
    INSERT INTO sessions (user_id, client_id, amr, auth_time, expires_at, ip_hash, user_agent)
    VALUES ($1, $2, $3, coalesce($7, now()), now() + make_interval(secs => $4), $5, $6)
    RETURNING id, user_id, client_id, amr, auth_time, expires_at, org_id
), r AS (
    INSERT INTO refresh_tokens (token_hash, session_id, client_id, scope, expires_at)
    SELECT $8, s.id, s.client_id, $9, least(now() + make_interval(secs => $10), s.expires_at)
    FROM s
)
SELECT s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.expires_at, s.org_id,
    {roles_of("$1")} AS roles
FROM s
"""


async def start_with_refresh(
    conn: asyncpg.Connection, new: NewSession, *, scope: str, idle_ttl: int
) -> tuple[Session, str, tuple[str, ...]]:
    """``create_session`` (no org) and ``issue_refresh`` in one statement, with the
    user's app roles: (session, raw refresh token, roles)."""
    raw, digest = new_refresh_token()
    row = await conn.fetchrow(_START, *new.values(), digest, scope, idle_ttl)
    assert row is not None
    values = list(row.values())
    return Session(*values[:-1]), raw, tuple(values[-1])


@dataclass(frozen=True, slots=True)
class Rotated:
    refresh_token: str
    session: Session
    scope: str
    email_verified: bool
    presented: str = field(default="", repr=False)  # the token this rotation used up
    # The presented token had been rotated moments ago and this is its unused
    # successor again (REUSE_GRACE_SECONDS): nothing was written, nothing to undo.
    retried: bool = False
    # The user's app roles, read by the rotation itself (None on a retry): a
    # refresh without org or permissions needs no claims statement of its own.
    roles: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Superseded:
    """The token was rotated moments ago by a concurrent request of the same
    client, and its successor is unused: a benign race, not a replay."""

    session_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Replayed:
    """A used token came back: its family must be treated as stolen."""

    session_id: uuid.UUID


# One round trip: lock the family's session, mark the presented token used
# (only if unused, unrevoked, unexpired and of this client), check the session,
# issue the next token of the family, touch the session, and read the user's
# app roles (the claims a refresh without org or permissions needs). With many
# apps on one connection every statement is planned again on each call (the
# search_path changed), so one statement fewer is ~0.24 ms of planning less.
#
# Lock order: the session row before any of its refresh tokens, as every
# revocation does (UPDATE sessions, then its tokens). A rotation that locked
# the token first deadlocked against a concurrent revocation: a losing rotation
# keeps the lock on the token's newest version (READ COMMITTED re-check) and
# then, as a replay, revokes the session that a third request held. The
# EXISTS is a one-time filter: it runs (and locks) before the token is read,
# and, unlike ``session_id = (SELECT ...)``, it never tempts the planner into
# the session_id index, which walks the whole family (hundreds of used tokens).
_ROTATE = """
WITH family AS (
    SELECT s.id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
    WHERE t.token_hash = $1 AND t.client_id = $2
    FOR NO KEY UPDATE OF s
), used AS (
    UPDATE refresh_tokens SET used_at = now(), successor_enc = $6
    WHERE token_hash = $1 AND client_id = $2 AND used_at IS NULL AND revoked_at IS NULL
      AND EXISTS (SELECT FROM family)
      AND expires_at > now()
      AND ($5::text IS NULL OR string_to_array($5, ' ') <@ string_to_array(scope, ' '))
    RETURNING session_id, scope
), live AS (
    UPDATE sessions s SET last_seen_at = now()
    FROM used, users u
    WHERE s.id = used.session_id AND s.revoked_at IS NULL AND s.expires_at > now()
      AND u.id = s.user_id AND u.status = 'active'
    RETURNING s.id, s.user_id, s.client_id, s.amr, s.auth_time, s.expires_at, s.org_id,
              used.scope, u.email_verified
), fresh AS (
    INSERT INTO refresh_tokens (token_hash, session_id, client_id, scope, expires_at)
    SELECT $3, live.id, live.client_id, coalesce($5, live.scope),
           least(now() + make_interval(secs => $4), live.expires_at)
    FROM live
    RETURNING id
)
SELECT live.*, (SELECT count(*) FROM fresh) AS issued, {roles} AS roles FROM live
""".format(roles=roles_of("live.user_id"))


# What a token that did not rotate is. ``benign``: used within the grace window,
# its session live, and no token of the family used since (the family is a
# chain: its successor, and any later one, would have used_at > this used_at).
# The session row is still locked by _ROTATE, so no rotation of the successor
# can commit between that statement and this one. For a benign repeat, also the
# family's live token (its only one: the successor, if nothing else happened)
# and what a retry's answer needs of the session.
_SEEN = """
WITH seen AS (
    SELECT t.session_id, t.used_at IS NOT NULL AS used,
           t.revoked_at IS NULL AND t.expires_at > now() AS live,
           t.used_at > now() - make_interval(secs => $3)
             AND s.revoked_at IS NULL AND s.expires_at > now()
             AND NOT EXISTS (SELECT FROM refresh_tokens o
                             WHERE o.session_id = t.session_id AND o.used_at > t.used_at)
             AS benign,
           t.successor_enc, s.user_id, s.client_id, s.amr, s.auth_time, s.expires_at,
           s.org_id, u.email_verified, u.status = 'active' AS user_active
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id
    WHERE t.token_hash = $1 AND t.client_id = $2
)
SELECT seen.*, n.token_hash AS live_hash, n.scope AS live_scope FROM seen
LEFT JOIN LATERAL (
    SELECT o.token_hash, o.scope FROM refresh_tokens o
    WHERE seen.benign AND seen.successor_enc IS NOT NULL
      AND o.session_id = seen.session_id AND o.used_at IS NULL AND o.revoked_at IS NULL
      AND o.expires_at > now()
    ORDER BY o.created_at DESC LIMIT 2
) n ON true
"""


async def rotate(
    conn: asyncpg.Connection,
    raw: str,
    *,
    client_id: str,
    idle_ttl: int,
    narrowed_scope: str | None = None,
    grace_seconds: float = REUSE_GRACE_SECONDS,
) -> Rotated | Superseded | Replayed | Literal["scope"] | None:
    """Exchange a refresh token for the next one of its family; None if invalid.

    On ``Replayed`` the caller revokes the session (``revoke_session``) and audits;
    on ``Superseded`` it answers invalid_grant and revokes nothing.
    """
    presented = hash_token(raw)
    next_raw, next_digest = new_refresh_token()
    kept = successors.seal(raw, presented, next_raw)
    row = await conn.fetchrow(
        _ROTATE, presented, client_id, next_digest, idle_ttl, narrowed_scope, kept
    )
    if row is not None and row["issued"] == 1:
        session = _session_of(row, "id")
        return Rotated(
            next_raw,
            session,
            narrowed_scope or row["scope"],
            row["email_verified"],
            raw,
            roles=tuple(row["roles"]),
        )
    rows = await conn.fetch(_SEEN, presented, client_id, grace_seconds)
    if not rows:
        return None
    seen = rows[0]
    if seen["used"]:
        if seen["benign"]:
            again = _retried(raw, presented, rows, narrowed_scope)
            return again if again is not None else Superseded(seen["session_id"])
        return Replayed(seen["session_id"])
    if seen["live"] and narrowed_scope is not None:
        return "scope"  # asked for more than the grant holds; the token stays unused
    return None


def _session_of(row: asyncpg.Record, id_column: str) -> Session:
    return Session(
        row[id_column],
        row["user_id"],
        row["client_id"],
        list(row["amr"]),
        row["auth_time"],
        row["expires_at"],
        row["org_id"],
    )


def _retried(
    raw: str, presented: bytes, rows: list[asyncpg.Record], narrowed_scope: str | None
) -> Rotated | None:
    """The successor of ``raw`` again, if it is the family's one live token (rows of _SEEN)."""
    seen = rows[0]
    if len(rows) != 1 or seen["live_hash"] is None or not seen["user_active"]:
        return None  # no successor kept, none live, or (never expected) two live tokens
    again = successors.open_(raw, presented, seen["successor_enc"])
    if again is None or hash_token(again) != seen["live_hash"]:
        return None
    if narrowed_scope is not None and narrowed_scope != seen["live_scope"]:
        return None  # another scope than the rotation gave: not a retry of it
    session = _session_of(seen, "session_id")
    return Rotated(again, session, seen["live_scope"], seen["email_verified"], raw, retried=True)


# Undo a rotation inside its own transaction, while the session row is still
# locked by _ROTATE: the presented token is unused again and its successor never
# existed. For a refresh that must fail after the rotation (an org switch the
# user may not make, issue 13) yet leave the family usable: the failure's audit
# row commits, the token does not burn. A concurrent use of the same token,
# waiting on the session lock, then rotates it normally.
_UNROTATE = """
WITH restored AS (
    UPDATE refresh_tokens SET used_at = NULL
    WHERE token_hash = $1 AND session_id = $3 AND used_at IS NOT NULL
    RETURNING id
)
DELETE FROM refresh_tokens WHERE token_hash = $2 AND session_id = $3
    AND EXISTS (SELECT FROM restored)
"""


async def unrotate(conn: asyncpg.Connection, rotated: Rotated) -> None:
    """Take back ``rotated`` (same transaction as the ``rotate`` that made it)."""
    done = await conn.execute(
        _UNROTATE,
        hash_token(rotated.presented),
        hash_token(rotated.refresh_token),
        rotated.session.id,
    )
    if done != "DELETE 1":
        raise RuntimeError(f"could not undo the rotation ({done})")


async def set_org(conn: asyncpg.Connection, session_id: uuid.UUID, org_id: str | None) -> None:
    """Point the family at another organization (an org switch, in the rotation's
    transaction: the session row is locked by ``rotate``)."""
    await conn.execute("UPDATE sessions SET org_id = $2 WHERE id = $1", session_id, org_id)


async def session_of_refresh(conn: asyncpg.Connection, raw: str) -> tuple[uuid.UUID, str] | None:
    """(session id, client id) of a refresh token, whatever its state."""
    row = await conn.fetchrow(
        "SELECT session_id, client_id FROM refresh_tokens WHERE token_hash = $1", hash_token(raw)
    )
    return None if row is None else (row["session_id"], row["client_id"])


async def refresh_token_info(conn: asyncpg.Connection, raw: str) -> asyncpg.Record | None:
    """Everything introspection needs about an active refresh token, else None."""
    return await conn.fetchrow(
        "SELECT r.client_id, r.scope, r.created_at, r.expires_at, s.id AS sid, s.user_id,"
        " s.org_id"
        " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id"
        " JOIN users u ON u.id = s.user_id"
        " WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.revoked_at IS NULL"
        " AND r.expires_at > now() AND s.revoked_at IS NULL AND s.expires_at > now()"
        " AND u.status = 'active'",
        hash_token(raw),
    )


async def revoke_session(conn: asyncpg.Connection, session_id: uuid.UUID, *, reason: str) -> bool:
    """End one session and its refresh family. True if it was live."""
    ended = await conn.fetchval(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE id = $1 AND revoked_at IS NULL RETURNING user_id",
        session_id,
        reason,
    )
    if ended is not None:
        await webhooks.emit(
            conn,
            webhooks.app_of(conn),
            "session.revoked",
            {"user_id": str(ended), "session_ids": [str(session_id)], "reason": reason},
        )
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE session_id = $1 AND revoked_at IS NULL",
        session_id,
    )
    return ended is not None


async def revoke_user_sessions(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    reason: str,
    except_session: uuid.UUID | None = None,
) -> int:
    """End every session (and refresh family) of a user in this app (S3).

    Browser sessions of the hosted login page end too, all of them: a session
    kept by ``except_session`` is an API session, never a browser one.
    """
    await conn.execute(
        "UPDATE browser_sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason,
    )
    ended = await conn.fetch(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)"
        " RETURNING id",
        user_id,
        reason,
        except_session,
    )
    ids = [r["id"] for r in ended]
    if ids:
        await webhooks.emit(
            conn,
            webhooks.app_of(conn),
            "session.revoked",
            {"user_id": str(user_id), "session_ids": [str(i) for i in ids[:100]], "reason": reason},
        )
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE session_id = ANY($1::uuid[]) AND revoked_at IS NULL",
            ids,
        )
    return len(ids)


async def active_session_user(
    conn: asyncpg.Connection, session_id: uuid.UUID
) -> asyncpg.Record | None:
    """The session's user if the session is live and the user active."""
    return await conn.fetchrow(
        "SELECT u.id, u.email, u.email_verified, u.status, u.created_at, u.updated_at"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
        " AND u.status = 'active'",
        session_id,
    )
