"""The browser session of one app's hosted pages (S4, ASVS V7).

The cookie holds only an opaque 256-bit token; the row (in the app's schema)
holds its SHA-256, the user, ``amr`` and ``auth_time``. Two things keep one
app's cookie from ever authenticating another app:

* the cookie is scoped to the app's issuer path (``Path=/apps/<app_id>``; RFC 6265
  section 5.1.4 path-match, so ``/apps/shop`` is not sent to ``/apps/shopping``)
  and carries the app id in its name, so a browser never sends it elsewhere;
* a token presented to app B is looked up in B's schema, where it cannot exist.

``__Host-`` cannot be used: that prefix requires ``Path=/``. ``Secure`` is set
whenever ``ONEAUTH_PUBLIC_URL`` is https (always in production); on an
``http://`` development URL it is left off, because browsers and HTTP client
libraries drop Secure cookies on plain http (except Chrome on ``localhost``).
HttpOnly and ``SameSite=Lax`` always: Lax still sends the cookie on the
top-level GET that brings a user back from a relying party to the authorize
endpoint, and never on a cross-site POST.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from oneauth import webhooks
from oneauth.settings import Settings

TOKEN_PREFIX = "obs_"
COOKIE_PREFIX = "oneauth_session_"


@dataclass(frozen=True, slots=True)
class BrowserSession:
    id: uuid.UUID
    user_id: uuid.UUID
    amr: list[str]
    auth_time: datetime
    expires_at: datetime
    email: str

    @property
    def sub(self) -> str:
        return str(self.user_id)


def cookie_name(app_id: str) -> str:
    return COOKIE_PREFIX + app_id


def cookie_path(settings: Settings, app_id: str) -> str:
    return urlsplit(settings.issuer_for(app_id)).path


def secure_cookies(settings: Settings) -> bool:
    return urlsplit(settings.public_url).scheme == "https"


def _hash(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()


def set_cookie(
    response: Response,
    settings: Settings,
    app_id: str,
    name: str,
    value: str,
    max_age: int | None,
) -> None:
    """Set a cookie of the app's hosted pages with the attributes S4 asks for."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=cookie_path(settings, app_id),
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def clear_cookie(response: Response, settings: Settings, app_id: str, name: str) -> None:
    response.delete_cookie(
        name,
        path=cookie_path(settings, app_id),
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def presented_token(request: Request, app_id: str) -> str | None:
    raw = request.cookies.get(cookie_name(app_id))
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    return raw


async def current(
    conn: asyncpg.Connection, request: Request, app_id: str, *, idle_ttl: int
) -> BrowserSession | None:
    """The live session named by this app's cookie, if any; ``conn`` is in the app's context.

    Live: not revoked, within its absolute lifetime (the app's
    ``session_absolute_ttl``), used within ``idle_ttl`` seconds (the app's
    ``refresh_idle_ttl``; issuing a code counts as use), and its user active.
    """
    raw = presented_token(request, app_id)
    if raw is None:
        return None
    row = await conn.fetchrow(
        "SELECT b.id, b.user_id, b.amr, b.auth_time, b.expires_at, u.email"
        " FROM browser_sessions b JOIN users u ON u.id = b.user_id"
        " WHERE b.token_hash = $1 AND b.revoked_at IS NULL AND b.expires_at > now()"
        " AND b.last_seen_at > now() - make_interval(secs => $2) AND u.status = 'active'",
        _hash(raw),
        idle_ttl,
    )
    if row is None:
        return None
    return BrowserSession(
        row["id"],
        row["user_id"],
        list(row["amr"]),
        row["auth_time"],
        row["expires_at"],
        row["email"],
    )


async def create(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    email: str,
    amr: list[str],
    ttl: int,
    ip_hash: str | None,
    user_agent: str | None,
) -> tuple[str, BrowserSession]:
    """A new session and the raw cookie value (shown once, stored hashed)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        "INSERT INTO browser_sessions (token_hash, user_id, amr, expires_at, ip_hash, user_agent)"
        " VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)"
        " RETURNING id, user_id, amr, auth_time, expires_at",
        _hash(raw),
        user_id,
        amr,
        ttl,
        ip_hash,
        (user_agent or "")[:512] or None,
    )
    assert row is not None
    return raw, BrowserSession(
        row["id"], row["user_id"], list(row["amr"]), row["auth_time"], row["expires_at"], email
    )


async def add_proof(conn: asyncpg.Connection, session_id: uuid.UUID, amr: list[str]) -> None:
    """The browser session has just proven one more factor: a second factor added on
    the account page, where the change itself needed a recent sign-in (with the
    factor the user already had). Registering a passkey or confirming a TOTP code is
    a proof of that factor, so the session now counts as a two-factor sign-in (as
    the enrolment flow's sign-in does) and the page does not ask for it at once."""
    await conn.execute(
        "UPDATE browser_sessions SET amr = ARRAY(SELECT DISTINCT a FROM unnest(amr || $2) a"
        " ORDER BY a) WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        [*amr, "mfa"],
    )


async def end(conn: asyncpg.Connection, session_id: uuid.UUID, *, reason: str) -> int:
    """End a browser session and every token session (refresh family) started from it.

    Returns how many token sessions ended.
    """
    await conn.execute(
        "UPDATE browser_sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        reason,
    )
    ended = await conn.fetch(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2"
        " WHERE browser_session_id = $1 AND revoked_at IS NULL RETURNING id, user_id",
        session_id,
        reason,
    )
    ids = [r["id"] for r in ended]
    if ids:
        await webhooks.emit(
            conn,
            webhooks.app_of(conn),
            "session.revoked",
            {
                "user_id": str(ended[0]["user_id"]),
                "session_ids": [str(i) for i in ids[:100]],
                "reason": reason,
            },
        )
        await conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE session_id = ANY($1::uuid[]) AND revoked_at IS NULL",
            ids,
        )
    return len(ids)


async def replace_presented(
    conn: asyncpg.Connection, request: Request, app_id: str, new: BrowserSession
) -> None:
    """Retire the session named by the request's cookie after a new sign-in (rotation).

    The same user signing in again keeps the token sessions started from the old
    browser session (they move to the new one, so a later logout still ends
    them); a different user's old session is ended with everything it started.
    """
    raw = presented_token(request, app_id)
    if raw is None:
        return
    old = await conn.fetchrow(
        "UPDATE browser_sessions SET revoked_at = now(), revoked_reason = 'rotated'"
        " WHERE token_hash = $1 AND revoked_at IS NULL AND id <> $2 RETURNING id, user_id",
        _hash(raw),
        new.id,
    )
    if old is None:
        return
    if old["user_id"] == new.user_id:
        await conn.execute(
            "UPDATE sessions SET browser_session_id = $2 WHERE browser_session_id = $1",
            old["id"],
            new.id,
        )
    else:
        await end(conn, old["id"], reason="replaced")


async def link_token_session(
    conn: asyncpg.Connection, session_id: uuid.UUID, browser_session_id: uuid.UUID
) -> None:
    await conn.execute(
        "UPDATE sessions SET browser_session_id = $2 WHERE id = $1", session_id, browser_session_id
    )


async def of_token_session(conn: asyncpg.Connection, session_id: uuid.UUID) -> uuid.UUID | None:
    """The browser session a token session was started from, if any."""
    value = await conn.fetchval("SELECT browser_session_id FROM sessions WHERE id = $1", session_id)
    return value if isinstance(value, uuid.UUID) else None
