"""A rotation's successor, kept so that only the presenter of the old token can open it (S1).

A retry of a refresh token whose response was lost (a timeout, a reset
connection, Postgres restarting after the commit) presents the token that the
lost rotation used up. Within the grace window, while the successor is unused,
the retry gets that same successor instead of an error (``repo.rotate``): one
live token per family, as before, and a client that lost an answer stays
signed in.

The successor is stored encrypted (AES-256-GCM) under a key derived from the
*presented* token with HMAC-SHA256. The database keeps only the SHA-256 of
that token, from which the key cannot be computed; so the stored value opens
for whoever presents the old token (who could have retried anyway) and for
nobody reading the database or a backup. The associated data is the
presented token's hash, so a value copied to another row does not open.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LABEL = b"oneauth refresh successor v1"
_NONCE = 12


def _key(presented: str) -> bytes:
    return hmac.new(presented.encode("utf-8", "surrogatepass"), _LABEL, hashlib.sha256).digest()


def seal(presented: str, presented_hash: bytes, successor: str) -> bytes:
    """``successor`` encrypted for the holder of ``presented``: nonce || ciphertext."""
    nonce = os.urandom(_NONCE)
    body = AESGCM(_key(presented)).encrypt(nonce, successor.encode("ascii"), presented_hash)
    return nonce + body


def open_(presented: str, presented_hash: bytes, sealed: bytes) -> str | None:
    """The successor, or None if ``sealed`` was not made for ``presented`` here."""
    if len(sealed) <= _NONCE:
        return None
    try:
        plain = AESGCM(_key(presented)).decrypt(sealed[:_NONCE], sealed[_NONCE:], presented_hash)
    except InvalidTag:
        return None
    return plain.decode("ascii")
