"""CSRF protection for the forms of the hosted pages (O7).

A signed double-submit token (OWASP CSRF Prevention Cheat Sheet): a random
value lives in an HttpOnly, app-path-scoped cookie; each form carries
``HMAC(key, app_id | value)``. A cross-site attacker can neither read the
cookie nor compute the MAC, and a token made for app A does not verify at app
B. As defence in depth a POST whose ``Origin`` is another origin, or whose
``Sec-Fetch-Site`` says ``cross-site``, is refused outright; ``SameSite=Lax``
keeps the session cookie off cross-site POSTs anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.requests import Request

from oneauth.settings import Settings
from oneauth.web.browser_session import COOKIE_PREFIX as SESSION_PREFIX

COOKIE_PREFIX = "oneauth_csrf_"
FIELD = "csrf"
_SEED = re.compile(r"[A-Za-z0-9_-]{43}")

assert COOKIE_PREFIX != SESSION_PREFIX


def cookie_name(app_id: str) -> str:
    return COOKIE_PREFIX + app_id


@lru_cache(maxsize=8)
def _key(master_key: str) -> bytes:
    # Derived, not configured: rotating the master key re-keys CSRF tokens too.
    return hashlib.sha256(b"oneauth/csrf|" + master_key.encode()).digest()


def _mac(settings: Settings, app_id: str, seed: str) -> str:
    message = f"{app_id}|{seed}".encode()
    return hmac.new(_key(settings.master_key), message, hashlib.sha256).hexdigest()


def _seed(request: Request, app_id: str) -> str | None:
    value = request.cookies.get(cookie_name(app_id))
    return value if value and _SEED.fullmatch(value) else None


def issue(request: Request, settings: Settings, app_id: str) -> tuple[str, str | None]:
    """The token for a form, and a new cookie value to set (None if the browser has one)."""
    existing = _seed(request, app_id)
    seed = existing or secrets.token_urlsafe(32)
    return _mac(settings, app_id, seed), None if existing else seed


def public_origin(settings: Settings) -> str:
    parts = urlsplit(settings.public_url)
    return f"{parts.scheme}://{parts.netloc}"


def same_origin(request: Request, settings: Settings) -> bool:
    origin = request.headers.get("origin")
    if origin is not None and origin != public_origin(settings):
        return False
    return request.headers.get("sec-fetch-site", "same-origin") != "cross-site"


def check(request: Request, settings: Settings, app_id: str, token: str | None) -> bool:
    """True if the POST came from one of this app's own pages in this browser."""
    if not same_origin(request, settings):
        return False
    seed = _seed(request, app_id)
    if seed is None or not token:
        return False
    return hmac.compare_digest(_mac(settings, app_id, seed), token)
