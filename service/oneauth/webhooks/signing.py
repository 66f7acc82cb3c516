"""Standard Webhooks signatures (https://www.standardwebhooks.com/) (SECURITY.md W-H2).

Every request carries ``webhook-id`` (the event id, the same on every retry and
replay, so a receiver de-duplicates on it), ``webhook-timestamp`` (Unix seconds
of this attempt, so a receiver refuses old messages: replay protection) and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``
where the key is the base64 part of the endpoint's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Mapping

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("webhook secrets start with whsec_")
    try:
        return base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("malformed webhook secret") from None


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(secret, msg_id, ts, body),
    }


def verify(
    secret: str,
    request_headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does: a valid v1 signature over a fresh timestamp.

    The signature header may list several space-separated signatures (during a
    secret rotation on the sender's side); one match suffices.
    """
    msg_id = request_headers.get("webhook-id", "")
    raw_ts = request_headers.get("webhook-timestamp", "")
    if not msg_id or not raw_ts.isdigit():
        return False
    ts = int(raw_ts)
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = signature(secret, msg_id, ts, body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in request_headers.get("webhook-signature", "").split()
    )
