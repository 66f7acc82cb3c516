"""A user's email address: verification state and changes (SQL, app context)."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from oneauth import audit
from oneauth.orgs import domains
from oneauth.sessions import everywhere

log = structlog.get_logger("oneauth.security")


@dataclass(frozen=True, slots=True)
class SignupBinding:
    """The proof came with the flow token of the signup that set the password.

    Only the signup's requester holds that flow token and only the mailbox
    owner can read the code or link: whoever presents both is one party, the
    owner of the address and of the password (P7).
    """

    password_fingerprint: bytes
    session_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class FirstProof:
    password_cleared: bool
    sessions_ended: int


async def mailbox_proven(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    email_normalized: str,
    *,
    method: str,
    meta: audit.RequestMeta,
    signup: SignupBinding | None = None,
) -> FirstProof | None:
    """The mailbox answered (a link, a code, later a federated login with a verified
    email): mark the address verified. None if it already was (or the account no
    longer has this address): only the first proof does anything more.

    Pre-hijacking (P7): someone may have signed up with another person's address
    and a password of their own, and signed in. The first proof of the mailbox
    is the first time the owner shows up, so it clears a password set before it
    (the owner sets one through a reset) and ends every session and refresh
    family created before it, browser sessions included. With ``signup`` (and the
    password still the one that signup set) the prover is the password's owner:
    the password and the signup's session stay, every other session ends.

    Every proof path calls this, in the transaction that uses up the proof; the
    row lock makes two concurrent proofs one first proof.
    """
    row = await conn.fetchrow(
        "SELECT email_verified, password_hash IS NOT NULL AS has_password,"
        " sha256(convert_to(coalesce(password_hash, ''), 'UTF8')) AS fingerprint"
        " FROM users WHERE id = $1 AND email_normalized = $2 FOR UPDATE",
        user_id,
        email_normalized,
    )
    if row is None or row["email_verified"]:
        return None
    bound = signup is not None and hmac.compare_digest(
        bytes(row["fingerprint"]), signup.password_fingerprint
    )
    clear = bool(row["has_password"]) and not bound
    await conn.execute(
        "UPDATE users SET email_verified = true, updated_at = now(),"
        " password_hash = CASE WHEN $2 THEN NULL ELSE password_hash END,"
        " password_changed_at = CASE WHEN $2 THEN now() ELSE password_changed_at END"
        " WHERE id = $1",
        user_id,
        clear,
    )
    # Domain auto-join (issue 13): the address is verified from now on.
    await domains.join_automatic_address(conn, user_id, email_normalized, meta=meta)
    kept = signup.session_id if bound and signup is not None else None
    ended = await everywhere.end_all(conn, user_id, reason="email_first_proof", except_session=kept)
    details = {
        "method": method,
        "signup_bound": bound,
        "password_cleared": clear,
        "sessions_ended": ended,
        "session_kept": str(kept) if kept else None,
    }
    await audit.record(
        conn,
        "email.first_proof",
        "success",
        meta,
        actor_type="user",
        actor_id=str(user_id),
        target_type="user",
        target_id=str(user_id),
        details=details,
    )
    # A security event (request_id and app_id come from the request's context):
    # whatever an earlier holder of the account had is gone.
    (log.warning if clear or ended else log.info)(
        "email_first_proof", user_id=str(user_id), **details
    )
    return FirstProof(password_cleared=clear, sessions_ended=ended)


async def change(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    old_normalized: str,
    email: str,
    email_normalized: str,
) -> bool:
    """Move the account to a confirmed new address; False if the old one changed meanwhile.

    Raises asyncpg.UniqueViolationError if another account took the address.
    """
    done = await conn.fetchval(
        "UPDATE users SET email = $3, email_normalized = $4, email_verified = true,"
        " updated_at = now() WHERE id = $1 AND email_normalized = $2 RETURNING id",
        user_id,
        old_normalized,
        email.strip(),
        email_normalized,
    )
    if done is not None:
        # The new address is verified: domain auto-join by it (issue 13).
        await domains.join_automatic_address(conn, user_id, email_normalized)
    return done is not None
