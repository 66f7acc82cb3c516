"""Federation state in the app's schema (SQL only; the connection comes first).

* ``federation_requests``: one redirect to an upstream. Looked up by the
  SHA-256 of ``state`` and consumed by one guarded UPDATE (single use: of two
  concurrent callbacks with one state, exactly one finds it; a replayed state
  finds nothing). Ten minutes. The PKCE verifier is sealed with the app, the
  provider and the state hash in the associated data.
* ``federation_pending_links``: an upstream identity waiting for the proof of
  the local account it would be linked to.
* ``federation_codes``: the one-time code of a first-party start (P5: 256
  bits, stored hashed, two minutes, single use).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from oneauth.secretbox import SecretBox

REQUEST_TTL = 10 * 60
PENDING_TTL = 10 * 60
CODE_TTL = 120
CODE_PREFIX = "ofc_"
MAX_STATE = 200
Purpose = Literal["login", "link"]


def _sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _verifier_context(app_id: str, provider_id: str, state_hash: bytes) -> str:
    return f"app:{app_id}/federation-verifier/{provider_id}/{state_hash.hex()}"


@dataclass(frozen=True, slots=True)
class Secrets:
    """What one redirect carries: shown to the upstream (state, nonce, challenge)
    and kept here (hash of the state, the nonce, the sealed verifier)."""

    state: str
    nonce: str
    verifier: str


def new_secrets() -> Secrets:
    # 256 bits each; the verifier is 43 characters of the RFC 7636 alphabet.
    return Secrets(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32))


async def store(
    conn: asyncpg.Connection,
    box: SecretBox,
    app_id: str,
    *,
    flow_id: uuid.UUID,
    provider_id: str,
    found: Secrets,
    purpose: Purpose = "login",
    user_id: uuid.UUID | None = None,
) -> None:
    state_hash = _sha256(found.state)
    sealed = box.seal(
        found.verifier.encode(), context=_verifier_context(app_id, provider_id, state_hash)
    )
    if secrets.randbelow(64) == 0:
        await conn.execute(
            "DELETE FROM federation_requests WHERE state_hash IN (SELECT state_hash"
            " FROM federation_requests WHERE expires_at < now() - interval '1 hour' LIMIT 500)"
        )
    await conn.execute(
        "INSERT INTO federation_requests (state_hash, flow_id, provider_id, purpose, user_id,"
        " nonce, verifier_sealed, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))",
        state_hash,
        flow_id,
        provider_id,
        purpose,
        user_id,
        found.nonce,
        sealed,
        REQUEST_TTL,
    )


@dataclass(frozen=True, slots=True)
class Consumed:
    flow_id: uuid.UUID
    provider_id: str
    purpose: Purpose
    user_id: uuid.UUID | None
    nonce: str
    verifier: str


async def consume(
    conn: asyncpg.Connection, box: SecretBox, app_id: str, state: str
) -> Consumed | None:
    """The request of ``state``, used up now; None if unknown, used or expired."""
    if not state or len(state) > MAX_STATE:
        return None
    state_hash = _sha256(state)
    row = await conn.fetchrow(
        "UPDATE federation_requests SET used_at = now()"
        " WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()"
        " RETURNING flow_id, provider_id, purpose, user_id, nonce, verifier_sealed",
        state_hash,
    )
    if row is None:
        return None
    verifier = box.open(
        row["verifier_sealed"],
        context=_verifier_context(app_id, row["provider_id"], state_hash),
    ).decode()
    return Consumed(
        row["flow_id"], row["provider_id"], row["purpose"], row["user_id"], row["nonce"], verifier
    )


async def serves_of(
    conn: asyncpg.Connection, provider_id: str, state: str
) -> dict[str, Any] | None:
    """What the flow of a live request for ``state`` at ``provider_id`` serves, NOT
    used up (the form_post re-post page's form-action targets, F9); None if unknown,
    used, expired or another provider's."""
    if not state or len(state) > MAX_STATE:
        return None
    value = await conn.fetchval(
        "SELECT f.serves FROM federation_requests r JOIN auth_flows f ON f.id = r.flow_id"
        " WHERE r.state_hash = $1 AND r.provider_id = $2 AND r.used_at IS NULL"
        " AND r.expires_at > now()",
        _sha256(state),
        provider_id,
    )
    if value is None:
        return None
    found = json.loads(value) if isinstance(value, str) else value
    return found if isinstance(found, dict) else None


# --- pending links --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLink:
    id: uuid.UUID
    flow_id: uuid.UUID
    provider_id: str
    user_id: uuid.UUID
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    upstream_amr: tuple[str, ...]
    tokens_sealed: str | None


async def add_pending(
    conn: asyncpg.Connection,
    *,
    flow_id: uuid.UUID,
    provider_id: str,
    user_id: uuid.UUID,
    issuer: str,
    subject: str,
    email: str | None,
    email_verified: bool,
    upstream_amr: Sequence[str],
    tokens_sealed: str | None,
) -> uuid.UUID:
    # One pending link per flow: a second callback in the flow replaces the first.
    await conn.execute(
        "DELETE FROM federation_pending_links WHERE flow_id = $1 AND used_at IS NULL", flow_id
    )
    value = await conn.fetchval(
        "INSERT INTO federation_pending_links (flow_id, provider_id, user_id, issuer, subject,"
        " email, email_verified, upstream_amr, tokens_sealed, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10))"
        " RETURNING id",
        flow_id,
        provider_id,
        user_id,
        issuer,
        subject,
        email,
        email_verified,
        list(upstream_amr),
        tokens_sealed,
        PENDING_TTL,
    )
    assert isinstance(value, uuid.UUID)
    return value


async def take_pending(conn: asyncpg.Connection, flow_id: uuid.UUID) -> PendingLink | None:
    """The flow's live pending link, locked until the transaction ends (not used up:
    :func:`use_pending` does that once the proof succeeded)."""
    row = await conn.fetchrow(
        "SELECT id, flow_id, provider_id, user_id, issuer, subject, email, email_verified,"
        " upstream_amr, tokens_sealed FROM federation_pending_links"
        " WHERE flow_id = $1 AND used_at IS NULL AND expires_at > now() FOR UPDATE",
        flow_id,
    )
    if row is None:
        return None
    return PendingLink(
        row["id"],
        row["flow_id"],
        row["provider_id"],
        row["user_id"],
        row["issuer"],
        row["subject"],
        row["email"],
        row["email_verified"],
        tuple(row["upstream_amr"]),
        row["tokens_sealed"],
    )


async def use_pending(conn: asyncpg.Connection, pending_id: uuid.UUID) -> bool:
    status = await conn.execute(
        "UPDATE federation_pending_links SET used_at = now() WHERE id = $1 AND used_at IS NULL",
        pending_id,
    )
    return bool(status.endswith(" 1"))


# --- first-party codes ---------------------------------------------------------------


async def issue_code(
    conn: asyncpg.Connection, user_id: uuid.UUID, provider_id: str | None, amr: Sequence[str]
) -> str:
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO federation_codes (code_hash, user_id, provider_id, amr, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        _sha256(code),
        user_id,
        provider_id,
        list(amr),
        CODE_TTL,
    )
    return code


async def redeem_code(conn: asyncpg.Connection, code: str) -> tuple[uuid.UUID, list[str]] | None:
    """The code's user and amr, used up now (of two concurrent redemptions one wins)."""
    if not code.startswith(CODE_PREFIX) or len(code) > 100:
        return None
    row = await conn.fetchrow(
        "UPDATE federation_codes SET used_at = now()"
        " WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()"
        " RETURNING user_id, amr",
        _sha256(code),
    )
    return None if row is None else (row["user_id"], list(row["amr"]))
