"""Reading untrusted compact JWS tokens on the service side (RFC 7515 section 7.1, I1).

ID token hints (``oauth.idtoken``) and client assertions
(``oauth.client_assertion``) come from outside; their header, and the
assertion's unverified ``sub``, are read before any signature is checked,
and even a verified payload is only as trustworthy as the client that signed
it. So every segment is decoded here: a size cap first, strict base64url
(RFC 7515 section 2: no padding, no other alphabet), UTF-8, then the bounded
JSON loader of :mod:`oneauth.untrusted` (depth, NUL, lone surrogates, number
range, repeated names), and the value must be an object.

Access tokens are checked by :mod:`oneauth.verifier`, a standalone library
with the same limits of its own (``verifier._jws``).
"""

from __future__ import annotations

import binascii
from typing import Any

from oneauth.untrusted import UntrustedInput, loads

__all__ = ["MAX_LENGTH", "MalformedJose", "claims", "header", "unverified_claims"]

MAX_LENGTH = 8192
_TO_STD = bytes.maketrans(b"-_", b"+/")
_PAD = (b"", b"===", b"==", b"=")  # by len % 4; 1 is never valid


class MalformedJose(ValueError):
    """Not a compact JWS this service will look at; the reason is for logs only."""


def _segments(token: object, max_length: int) -> list[str]:
    if not isinstance(token, str) or len(token) > max_length:
        raise MalformedJose("not a string or too long")
    parts = token.split(".")
    if len(parts) != 3 or not token.isascii() or "=" in token:
        raise MalformedJose("not a compact JWS")
    return parts


def _object(data: bytes) -> dict[str, Any]:
    try:
        value = loads(data)
    except UntrustedInput as exc:
        raise MalformedJose(exc.reason) from None
    if not isinstance(value, dict):
        raise MalformedJose("not a JSON object")
    return value


def _decode(segment: str) -> bytes:
    raw = segment.encode("ascii")
    if b"+" in raw or b"/" in raw:
        raise MalformedJose("not base64url")
    try:
        return binascii.a2b_base64(raw.translate(_TO_STD) + _PAD[len(raw) & 3], strict_mode=True)
    except binascii.Error:
        raise MalformedJose("not base64url") from None


def header(token: object, *, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """The JOSE header of a compact JWS, before any signature check."""
    return _object(_decode(_segments(token, max_length)[0]))


def unverified_claims(token: object, *, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """The payload, unverified: only to find which key must verify it."""
    return _object(_decode(_segments(token, max_length)[1]))


def claims(payload: bytes) -> dict[str, Any]:
    """A verified payload (jwcrypto's ``JWS.payload``) as a JSON object."""
    return _object(payload)
