"""Matching a presented redirect URI against a client's registered ones (O1).

RFC 6749 section 3.1.2.3 and RFC 9700 section 4.1.3: compare by exact string,
no normalisation (no case folding, no trailing-slash or dot-segment handling,
no extra query), because every normalisation rule is a bypass somewhere else.

The one exception is RFC 8252 section 7.3: a native (public) client listening
on a loopback IP literal picks its port at run time, so for a registered
``http://127.0.0.1/...`` or ``http://[::1]/...`` the port may differ while
everything else stays exactly equal. ``localhost`` gets no such freedom
(RFC 8252 section 8.3: it may resolve elsewhere).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LENGTH = 2000

# Scheme, loopback literal and optional port; the rest must start with "/" or "?"
# so that "http://127.0.0.1:80@evil.example/" (userinfo) can never match.
_LOOPBACK = re.compile(
    r"http://(?P<host>127\.0\.0\.1|\[::1\])(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?][^#]*)?"
)


def _loopback_parts(uri: str) -> tuple[str, str] | None:
    match = _LOOPBACK.fullmatch(uri)
    if match is None:
        return None
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        return None
    return match["host"], match["rest"] or ""


def matches(registered: Iterable[str], presented: str, *, native: bool) -> bool:
    """True if ``presented`` is one of ``registered`` (see the module docstring)."""
    if len(presented) > MAX_LENGTH:
        return False
    registered = tuple(registered)
    if presented in registered:
        return True
    if not native:
        return False
    wanted = _loopback_parts(presented)
    if wanted is None:
        return False
    return any(_loopback_parts(uri) == wanted for uri in registered)


def origin(uri: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URI, or ``scheme:`` for a private-use
    scheme (native apps): what a CSP ``form-action`` source list needs."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return None
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    if not rest.startswith("//"):
        return None
    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    if not authority or "@" in authority or not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", authority):
        return None
    return f"{scheme}://{authority}"
