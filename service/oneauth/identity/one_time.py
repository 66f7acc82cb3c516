"""One-time links and codes sent by email (SQL and the secrets' shapes).

P5 / ASVS 6.4.1, 6.5.1, 6.6.2:

* Links carry 256 bits from the OS CSPRNG; codes are 6 digits, short-lived and
  limited to a few attempts; a *flow token* (256 bits), given to the client or
  browser that asked, binds codes and magic links to that request.
* Only MACs are stored: HMAC-SHA-256 under a key derived from the master key,
  over ``app_id | purpose | what | value``. A database dump reveals no usable
  link, and not even a 6-digit code can be brute-forced from it offline; a
  value made for app A or for another purpose never matches at app B.
* Single use: ``UPDATE ... SET used_at = now() WHERE used_at IS NULL``.
* Bound to the user's address when issued (a token dies if it changes) and, for
  a password reset, to the password hash when issued.

Every function takes a connection inside the app's context (router).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Literal

import asyncpg

from oneauth.mail.outbox import CHANNEL, INSERT_COLUMNS, Draft

Purpose = Literal["verify_email", "reset_password", "magic_link", "email_otp", "change_email"]
CODE_DIGITS = 6
MAX_CODE_ATTEMPTS = 5
MAX_SECRET_INPUT = 128  # longer input is not one of ours


@cache
def _key(master_key: str) -> bytes:
    # Derived, not configured: one secret to manage. Rotating the master key
    # invalidates pending links and codes, which live 30 minutes at most but
    # for verification (24 hours).
    return hashlib.sha256(b"oneauth/one-time-token|" + master_key.encode()).digest()


@dataclass(frozen=True, slots=True)
class Macs:
    """MACs of one app's one-time secrets."""

    master_key: str
    app_id: str

    def _mac(self, purpose: str, what: str, value: str) -> bytes:
        msg = f"{self.app_id}|{purpose}|{what}|{value}".encode("utf-8", "surrogatepass")
        return hmac.new(_key(self.master_key), msg, hashlib.sha256).digest()

    def link(self, purpose: str, token: str) -> bytes:
        return self._mac(purpose, "link", token)

    def flow(self, purpose: str, flow_token: str) -> bytes:
        return self._mac(purpose, "flow", flow_token)

    def code(self, purpose: str, flow_hash: bytes, code: str) -> bytes:
        # Keyed by the flow too: the same code in two flows has two MACs.
        return self._mac(purpose, "code", flow_hash.hex() + "|" + code)


def new_secret() -> str:
    """A link secret or flow token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def clean_code(code: str) -> str | None:
    """Accept "123 456" and "123-456" as typed; None if it cannot be a code."""
    digits = code.replace(" ", "").replace("-", "")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


@dataclass(frozen=True, slots=True)
class Issue:
    """A token to store: MACs of what goes into the message, lifetimes."""

    purpose: Purpose
    token_hash: bytes | None
    code_hash: bytes | None
    flow_hash: bytes | None
    ttl: int
    code_ttl: int | None = None
    max_attempts: int = MAX_CODE_ATTEMPTS
    new_email: str | None = None
    # verify_email at signup (P7): remember the password the signup set and its
    # session, kept by a first proof that comes with the signup's flow token.
    signup: bool = False
    signup_session_id: uuid.UUID | None = None


# One statement for "an address asked for a link": find the account, store the
# token and queue its message, or do nothing, with the same round trips and
# the same statement either way (P4: no timing difference worth the name
# between known and unknown addresses). NOTIFY fires only if a row was queued.
_ISSUE_FOR_ADDRESS = f"""
WITH u AS (
    SELECT id, email, password_hash FROM users
    WHERE email_normalized = $1 AND status = 'active'
      AND (NOT $2::boolean OR NOT email_verified)
), t AS (
    INSERT INTO one_time_tokens (purpose, user_id, email, token_hash, code_hash, flow_hash,
                                 max_attempts, expires_at, code_expires_at, password_fingerprint)
    SELECT $3, u.id, $1, $4, $5, $6, $7, now() + make_interval(secs => $8),
           CASE WHEN $5::bytea IS NULL THEN NULL ELSE now() + make_interval(secs => $9) END,
           CASE WHEN $3 = 'reset_password'
                THEN sha256(convert_to(coalesce(u.password_hash, ''), 'UTF8')) END
    FROM u
    RETURNING id, user_id
), o AS (
    INSERT INTO outbox ({INSERT_COLUMNS})
    SELECT $10, u.email, $11::jsonb, $12, $13, now() + make_interval(secs => $14)
    FROM u JOIN t ON t.user_id = u.id
    RETURNING id
)
SELECT t.user_id, o.id AS outbox_id, pg_notify($15, $16)::text AS notified FROM t, o
"""


@dataclass(frozen=True, slots=True)
class Issued:
    user_id: uuid.UUID
    outbox_id: int


async def issue_for_address(
    conn: asyncpg.Connection,
    app_id: str,
    email_normalized: str,
    issue: Issue,
    mail: Draft,
    *,
    only_unverified: bool = False,
) -> Issued | None:
    """Store the token and queue its message if an active account has this address."""
    row = await conn.fetchrow(
        _ISSUE_FOR_ADDRESS,
        email_normalized,
        only_unverified,
        issue.purpose,
        issue.token_hash,
        issue.code_hash,
        issue.flow_hash,
        issue.max_attempts,
        issue.ttl,
        issue.code_ttl or 0,
        mail.kind,
        mail.context_json,
        mail.sealed,
        mail.max_attempts,
        mail.ttl or issue.ttl,
        CHANNEL,
        app_id,
    )
    return None if row is None else Issued(row["user_id"], row["outbox_id"])


async def issue_for_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, email_normalized: str, issue: Issue
) -> uuid.UUID:
    """Store a token for a known user (signup, email change); the caller queues the mail."""
    token_id = await conn.fetchval(
        "INSERT INTO one_time_tokens (purpose, user_id, email, new_email, token_hash, code_hash,"
        " flow_hash, max_attempts, expires_at, code_expires_at, signup_password_fingerprint,"
        " signup_session_id)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9),"
        " CASE WHEN $6::bytea IS NULL THEN NULL ELSE now() + make_interval(secs => $10) END,"
        " CASE WHEN $11 THEN sha256(convert_to(coalesce(u.password_hash, ''), 'UTF8')) END, $12"
        " FROM users u WHERE u.id = $2"
        " RETURNING id",
        issue.purpose,
        user_id,
        email_normalized,
        issue.new_email,
        issue.token_hash,
        issue.code_hash,
        issue.flow_hash,
        issue.max_attempts,
        issue.ttl,
        issue.code_ttl or 0,
        issue.signup,
        issue.signup_session_id,
    )
    assert isinstance(token_id, uuid.UUID)
    return token_id


@dataclass(frozen=True, slots=True)
class Found:
    id: uuid.UUID
    purpose: str
    user_id: uuid.UUID
    email: str
    new_email: str | None
    code_hash: bytes | None
    flow_hash: bytes | None
    attempts: int
    max_attempts: int
    link_live: bool
    code_live: bool
    used: bool
    # The account still has the address, and (reset) the password, it had at issue.
    bound_ok: bool
    user_email: str
    # verify_email issued at signup (P7): the password it set, the session it started.
    signup_password_fingerprint: bytes | None
    signup_session_id: uuid.UUID | None

    @property
    def code_usable(self) -> bool:
        return (
            not self.used
            and self.code_live
            and self.attempts < self.max_attempts
            and self.bound_ok
            and self.code_hash is not None
        )

    @property
    def link_usable(self) -> bool:
        return not self.used and self.link_live and self.bound_ok


_FIND = """
SELECT t.id, t.purpose, t.user_id, t.email, t.new_email, t.code_hash, t.flow_hash, t.attempts,
       t.max_attempts, t.expires_at > now() AS link_live,
       coalesce(t.code_expires_at > now() AND t.expires_at > now(), false) AS code_live,
       t.used_at IS NOT NULL AS used,
       (u.status = 'active' AND u.email_normalized = t.email
        AND (t.password_fingerprint IS NULL OR t.password_fingerprint
             = sha256(convert_to(coalesce(u.password_hash, ''), 'UTF8')))) AS bound_ok,
       u.email AS user_email, t.signup_password_fingerprint, t.signup_session_id
FROM one_time_tokens t JOIN users u ON u.id = t.user_id
"""


def _found(row: asyncpg.Record | None) -> Found | None:
    return None if row is None else Found(*row.values())


async def by_link(conn: asyncpg.Connection, purpose: str, token_hash: bytes) -> Found | None:
    """The token behind a link, locked for this transaction."""
    return _found(
        await conn.fetchrow(
            _FIND + " WHERE t.token_hash = $1 AND t.purpose = $2 FOR UPDATE OF t",
            token_hash,
            purpose,
        )
    )


async def by_flow(conn: asyncpg.Connection, purpose: str, flow_hash: bytes) -> Found | None:
    """The token issued to a flow (for its code), locked for this transaction."""
    return _found(
        await conn.fetchrow(
            _FIND + " WHERE t.flow_hash = $1 AND t.purpose = $2 FOR UPDATE OF t",
            flow_hash,
            purpose,
        )
    )


async def by_id(conn: asyncpg.Connection, token_id: uuid.UUID) -> Found | None:
    return _found(await conn.fetchrow(_FIND + " WHERE t.id = $1 FOR UPDATE OF t", token_id))


async def count_failed_attempt(conn: asyncpg.Connection, token_id: uuid.UUID) -> int:
    attempts = await conn.fetchval(
        "UPDATE one_time_tokens SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
        token_id,
    )
    return int(attempts or 0)


async def consume(conn: asyncpg.Connection, token_id: uuid.UUID) -> bool:
    """Mark used; False if it already was (of two concurrent uses, one wins)."""
    used = await conn.fetchval(
        "UPDATE one_time_tokens SET used_at = now() WHERE id = $1 AND used_at IS NULL RETURNING id",
        token_id,
    )
    return used is not None


async def retire_for_user(conn: asyncpg.Connection, user_id: uuid.UUID, purposes: list[str]) -> int:
    """Use up a user's other pending tokens (e.g. every reset link once one worked)."""
    status = await conn.execute(
        "UPDATE one_time_tokens SET used_at = now()"
        " WHERE user_id = $1 AND purpose = ANY($2::text[]) AND used_at IS NULL",
        user_id,
        purposes,
    )
    return int(status.split()[-1])
