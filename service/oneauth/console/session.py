"""The console's sign-in: a server-side row named by an opaque cookie (issue 15).

The cookie ``oneauth_console`` holds only a random 256-bit token (``ocs_...``);
the row in ``oneauth.console_sessions`` holds its SHA-256, the operator's
``sub`` and email (from the platform app's ID token) and the operator's platform
tokens sealed with the master key. The cookie is HttpOnly, ``SameSite=Lax``,
``Path=/console`` and ``Secure`` whenever the public URL is https (as the hosted
pages' cookies, :mod:`oneauth.web.browser_session`). A session ends after
``IDLE_TTL`` seconds without a request or ``ABSOLUTE_TTL`` after the sign-in,
whichever comes first; sign-out deletes the row.

What an operator may do is NOT in the session: every page re-reads the
operator's grants (``oneauth.console_grants``), so a revoked grant takes effect
at the next request.

The CSRF token of the console's forms is ``HMAC(key, "console|" + session id)``
(a synchronizer token bound to the server-side session) checked with the
hosted pages' Origin / Sec-Fetch-Site test (:func:`oneauth.web.csrf.same_origin`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from oneauth.secretbox import SecretBox
from oneauth.settings import Settings
from oneauth.web import csrf
from oneauth.web.browser_session import secure_cookies

PATH = "/console"
COOKIE = "oneauth_console"
TOKEN_PREFIX = "ocs_"
IDLE_TTL = 30 * 60  # seconds without a request
ABSOLUTE_TTL = 8 * 3600  # seconds after the sign-in
_SEAL_CONTEXT = "console-session-tokens"
# How often last_used_at is written: not on every page view (one UPDATE less per
# request), but often enough that the idle timeout is accurate to a minute.
_TOUCH_EVERY = 60


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    id: uuid.UUID
    operator_sub: uuid.UUID
    operator_email: str

    @property
    def sub(self) -> str:
        return str(self.operator_sub)


def _hash(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()


def presented_token(request: Request) -> str | None:
    raw = request.cookies.get(COOKIE)
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    return raw


async def create(
    conn: asyncpg.Connection,
    box: SecretBox,
    *,
    operator_sub: str,
    operator_email: str,
    tokens: dict[str, Any],
) -> str:
    """A new session row; returns the raw token for the cookie (never stored)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    sealed = box.seal(json.dumps(tokens).encode(), context=_SEAL_CONTEXT)
    await conn.execute(
        "INSERT INTO oneauth.console_sessions"
        " (token_hash, operator_sub, operator_email, tokens_sealed, expires_at)"
        " VALUES ($1, $2, $3, $4, now() + $5::interval)",
        _hash(raw),
        uuid.UUID(operator_sub),
        operator_email,
        sealed,
        timedelta(seconds=ABSOLUTE_TTL),
    )
    return raw


async def current(conn: asyncpg.Connection, request: Request) -> ConsoleSession | None:
    """The live session named by the cookie: within both timeouts (touched here)."""
    raw = presented_token(request)
    if raw is None:
        return None
    row = await conn.fetchrow(
        "SELECT id, operator_sub, operator_email,"
        " last_used_at < now() - $2::interval AS stale"
        " FROM oneauth.console_sessions"
        " WHERE token_hash = $1 AND expires_at > now()"
        " AND last_used_at > now() - $3::interval",
        _hash(raw),
        timedelta(seconds=_TOUCH_EVERY),
        timedelta(seconds=IDLE_TTL),
    )
    if row is None:
        return None
    if row["stale"]:
        await conn.execute(
            "UPDATE oneauth.console_sessions SET last_used_at = now() WHERE id = $1", row["id"]
        )
    return ConsoleSession(row["id"], row["operator_sub"], row["operator_email"])


async def tokens(conn: asyncpg.Connection, box: SecretBox, session: ConsoleSession) -> Any:
    """The operator's sealed platform tokens, opened."""
    sealed = await conn.fetchval(
        "SELECT tokens_sealed FROM oneauth.console_sessions WHERE id = $1", session.id
    )
    return json.loads(box.open(sealed, context=_SEAL_CONTEXT)) if sealed else None


async def delete(conn: asyncpg.Connection, request: Request) -> None:
    raw = presented_token(request)
    if raw is not None:
        await conn.execute("DELETE FROM oneauth.console_sessions WHERE token_hash = $1", _hash(raw))


async def prune(conn: asyncpg.Connection) -> None:
    """Expired rows go when an operator signs in (no sweeper needed at this scale)."""
    await conn.execute(
        "DELETE FROM oneauth.console_sessions"
        " WHERE expires_at < now() OR last_used_at < now() - $1::interval",
        timedelta(seconds=IDLE_TTL),
    )


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path=PATH, secure=secure_cookies(settings), httponly=True, samesite="lax"
    )


@lru_cache(maxsize=8)
def _csrf_key(master_key: str) -> bytes:
    # Derived, not configured; distinct from the hosted pages' CSRF key.
    return hashlib.sha256(b"oneauth/console-csrf|" + master_key.encode()).digest()


def csrf_token(settings: Settings, session: ConsoleSession) -> str:
    message = f"console|{session.id}".encode()
    return hmac.new(_csrf_key(settings.master_key), message, hashlib.sha256).hexdigest()


def csrf_ok(request: Request, settings: Settings, session: ConsoleSession, token: str) -> bool:
    """True if a POST came from a console page of this session, from our origin."""
    if not csrf.same_origin(request, settings) or not token:
        return False
    return hmac.compare_digest(csrf_token(settings, session), token)
