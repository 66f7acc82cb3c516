"""Storage of passkeys (WebAuthn credentials), user handles and challenges.

Every function takes the app's connection first (``services.router.enter(app)``):
a credential, handle or challenge is only ever looked up in the app's own
schema, so app B cannot find (let alone use) a passkey registered at app A even
though the browser offers it, all apps sharing the issuer's host as RP ID (W1).
Tables: ``sql/app/0012_webauthn.sql``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from oneauth import metrics
from oneauth.errors import TooManyRequests
from oneauth.identity import throttle

HANDLE_BYTES = 32
CHALLENGE_TTL = 300  # seconds (W3): a ceremony the user abandoned expires soon
Purpose = Literal["register", "authenticate"]
UserVerification = Literal["preferred", "required"]


@dataclass(frozen=True, slots=True)
class Credential:
    factor_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    backup_state: bool
    aaguid: uuid.UUID | None
    user_verified: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Challenge:
    purpose: Purpose
    user_id: uuid.UUID | None
    flow_id: uuid.UUID | None
    user_verification: UserVerification


# Only confirmed factors count (DESIGN12): a credential row always has one, but
# the join keeps the rule in one place should that ever change.
_SELECT = (
    "SELECT c.factor_id, f.user_id, f.name, c.credential_id, c.public_key, c.sign_count,"
    " c.transports, c.backup_eligible, c.backup_state, c.aaguid, c.user_verified,"
    " f.created_at, f.last_used_at"
    " FROM webauthn_credentials c JOIN mfa_factors f ON f.id = c.factor_id"
    " WHERE f.kind = 'webauthn' AND f.confirmed_at IS NOT NULL"
)


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(
        factor_id=row["factor_id"],
        user_id=row["user_id"],
        name=row["name"],
        credential_id=bytes(row["credential_id"]),
        public_key=bytes(row["public_key"]),
        sign_count=row["sign_count"],
        transports=tuple(row["transports"]),
        backup_eligible=row["backup_eligible"],
        backup_state=row["backup_state"],
        aaguid=row["aaguid"],
        user_verified=row["user_verified"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )


async def user_handle(conn: asyncpg.Connection, user_id: uuid.UUID) -> bytes:
    """The user's handle in this app, made on first use (random, never the user id)."""
    fresh = secrets.token_bytes(HANDLE_BYTES)
    row = await conn.fetchrow(
        "INSERT INTO webauthn_user_handles (user_id, handle) VALUES ($1, $2)"
        " ON CONFLICT (user_id) DO UPDATE SET handle = webauthn_user_handles.handle"
        " RETURNING handle",
        user_id,
        fresh,
    )
    assert row is not None
    return bytes(row["handle"])


async def user_of_handle(conn: asyncpg.Connection, handle: bytes) -> uuid.UUID | None:
    value = await conn.fetchval(
        "SELECT user_id FROM webauthn_user_handles WHERE handle = $1", handle
    )
    return value if isinstance(value, uuid.UUID) else None


async def credentials_of(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Credential]:
    rows = await conn.fetch(_SELECT + " AND f.user_id = $1 ORDER BY f.created_at", user_id)
    return [_credential(r) for r in rows]


async def by_credential_id(conn: asyncpg.Connection, credential_id: bytes) -> Credential | None:
    row = await conn.fetchrow(_SELECT + " AND c.credential_id = $1", credential_id)
    return _credential(row) if row else None


async def add(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    name: str,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    transports: list[str],
    backup_eligible: bool,
    backup_state: bool,
    aaguid: uuid.UUID | None,
    user_verified: bool,
) -> uuid.UUID | None:
    """Store a verified credential as a confirmed factor; None when this
    credential id is already registered in this app (to anyone)."""
    # No savepoint (the router's transaction is a manual one): the key insert
    # cannot fail on a duplicate (ON CONFLICT), and the factor row goes if it did.
    factor_id = await conn.fetchval(
        "INSERT INTO mfa_factors (user_id, kind, name, confirmed_at)"
        " VALUES ($1, 'webauthn', $2, now()) RETURNING id",
        user_id,
        name,
    )
    stored = await conn.fetchval(
        "INSERT INTO webauthn_credentials (factor_id, credential_id, public_key, sign_count,"
        " transports, backup_eligible, backup_state, aaguid, user_verified)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (credential_id) DO NOTHING RETURNING factor_id",
        factor_id,
        credential_id,
        public_key,
        sign_count,
        transports,
        backup_eligible,
        backup_state,
        aaguid,
        user_verified,
    )
    if stored is None:
        await conn.execute("DELETE FROM mfa_factors WHERE id = $1", factor_id)
        return None
    assert isinstance(factor_id, uuid.UUID)
    return factor_id


async def record_use(
    conn: asyncpg.Connection,
    factor_id: uuid.UUID,
    *,
    seen_count: int,
    new_count: int,
    backup_state: bool,
) -> bool:
    """Advance the signature counter after a verified assertion (WebAuthn 7.2 step 21).

    One guarded UPDATE: a counter of 0 that stays 0 is an authenticator that
    keeps none (most synced passkeys); otherwise the new value must exceed the
    stored one, compared in the row itself, so of two concurrent assertions of
    a counting authenticator at most one moves it. False: refused (a cloned
    authenticator, or a replay that lost the race)."""
    moved = await conn.fetchval(
        "UPDATE webauthn_credentials SET sign_count = $3, backup_state = $4"
        " WHERE factor_id = $1 AND sign_count = $2"
        " AND ($3 > sign_count OR ($3 = 0 AND sign_count = 0))"
        " RETURNING factor_id",
        factor_id,
        seen_count,
        new_count,
        backup_state,
    )
    if moved is None:
        return False
    await conn.execute("UPDATE mfa_factors SET last_used_at = now() WHERE id = $1", factor_id)
    return True


def challenge_hash(challenge: bytes) -> bytes:
    return hashlib.sha256(challenge).digest()


async def new_challenge(
    conn: asyncpg.Connection,
    purpose: Purpose,
    *,
    user_id: uuid.UUID | None = None,
    flow_id: uuid.UUID | None = None,
    user_verification: UserVerification,
    ttl: int = CHALLENGE_TTL,
) -> bytes:
    """A fresh 32-byte challenge (WebAuthn 13.4.3: at least 16 random bytes), stored hashed."""
    challenge = secrets.token_bytes(32)
    # Expired challenges are swept by whoever asks next: the table stays small.
    await conn.execute("DELETE FROM webauthn_challenges WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO webauthn_challenges (challenge_hash, purpose, user_id, flow_id,"
        " user_verification, expires_at) VALUES ($1, $2, $3, $4, $5,"
        " now() + make_interval(secs => $6))",
        challenge_hash(challenge),
        purpose,
        user_id,
        flow_id,
        user_verification,
        float(ttl),
    )
    return challenge


async def take_challenge(
    conn: asyncpg.Connection,
    challenge: bytes,
    purpose: Purpose,
    *,
    user_id: uuid.UUID | None = None,
    flow_id: uuid.UUID | None = None,
) -> Challenge | None:
    """Consume the challenge a response carries, if it is outstanding, unexpired and
    bound to this user (registration) or flow (authentication); else None. The
    row is deleted whatever the response turns out to be: single use (W3)."""
    row = await conn.fetchrow(
        "DELETE FROM webauthn_challenges WHERE challenge_hash = $1 AND purpose = $2"
        " AND user_id IS NOT DISTINCT FROM $3 AND flow_id IS NOT DISTINCT FROM $4"
        " RETURNING purpose, user_id, flow_id, user_verification, expires_at > now() AS live",
        challenge_hash(challenge),
        purpose,
        user_id,
        flow_id,
    )
    if row is None or not row["live"]:
        return None
    return Challenge(row["purpose"], row["user_id"], row["flow_id"], row["user_verification"])


SWEEP_BATCH = 100


# Passwordless sign-ins one IP may begin per minute (W7): a person needs a few;
# more is someone filling the app's flow table.
ANONYMOUS_PER_IP = 30
ANONYMOUS_WINDOW_SECONDS = 60


async def before_anonymous_flow(
    conn: asyncpg.Connection, names: throttle.Names, ip_hash: str | None
) -> None:
    """What begins a passwordless (anonymous) passkey flow first: the per-IP window
    (429 with Retry-After when over) and a sweep of abandoned flows."""
    if ip_hash is not None:
        wait = await throttle.take_window(
            conn,
            f"passkey:ip:{names.hash('ip', ip_hash)}",
            limit=ANONYMOUS_PER_IP,
            seconds=ANONYMOUS_WINDOW_SECONDS,
        )
        if wait is not None:
            metrics.THROTTLE_PASSKEY.inc()
            raise TooManyRequests(
                "too many passkey sign-ins begun from here; wait before trying again",
                headers={"retry-after": str(wait)},
            )
    await sweep_anonymous_flows(conn)


async def sweep_anonymous_flows(conn: asyncpg.Connection) -> None:
    """Delete a batch of expired sign-in flows that never identified a user.

    Passwordless options begin a flow for anyone who asks (no user is known
    yet), so each unauthenticated call leaves a row; whoever begins the next one
    removes up to a batch of the expired ones (their challenges go with them,
    ON DELETE CASCADE), so the table does not grow with abandoned attempts."""
    await conn.execute(
        "DELETE FROM auth_flows WHERE id IN (SELECT id FROM auth_flows"
        " WHERE expires_at < now() AND user_id IS NULL LIMIT $1)",
        SWEEP_BATCH,
    )
