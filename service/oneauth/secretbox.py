"""Secrets at rest: AES-256-GCM under a key-encryption key from configuration (SECURITY.md A2).

Signing keys, TOTP seeds and upstream client secrets are stored as sealed strings::

    v1.<key id>.<base64url nonce>.<base64url ciphertext || 16-byte tag>

* AES-256-GCM (NIST SP 800-38D) with a fresh random 96-bit nonce per seal. Random nonces
  are safe for up to 2**32 seals per key (SP 800-38D section 8.3); secrets at rest are
  written a few times per app, so rotation happens long before that.
* The caller's ``context`` (e.g. ``"app:shop/signing-key/<kid>"``) is bound as associated
  data, together with the format version and key id. A sealed value copied to another
  app, row or purpose does not open.
* Several master keys can be configured, each with a short id; the current one seals,
  all of them open, so the master key can be rotated without a flag day (re-seal with
  :meth:`SecretBox.needs_reseal`).

No per-purpose subkeys are derived: the context in the associated data already separates
purposes, and the key count stays one per master key, which keeps rotation simple.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_LEN", "SecretBox", "SecretBoxError", "generate_master_key", "sealed_key_id"]

KEY_LEN: Final = 32  # AES-256
_NONCE_LEN: Final = 12  # 96 bits, the GCM-native nonce size
_TAG_LEN: Final = 16
_VERSION: Final = "v1"
_AAD_LABEL: Final = b"oneauth/secretbox/v1"
# Key ids travel inside the sealed string and the config value, so they must not contain
# the separators "." "," ":".
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")
_CONFIG_VAR: Final = "ONEAUTH_MASTER_KEY"


class SecretBoxError(Exception):
    """A sealed value cannot be opened: unknown key id, malformed, tampered or wrong context.

    The message never contains key material or plaintext.
    """


def generate_master_key() -> str:
    """A new random 32-byte master key, base64url without padding (for ONEAUTH_MASTER_KEY)."""
    return _b64encode(os.urandom(KEY_LEN))


class SecretBox:
    """Seal and open small secrets with AES-256-GCM under rotating master keys."""

    __slots__ = ("_aead", "_current")

    def __init__(self, master_keys: Mapping[str, bytes], current: str) -> None:
        if current not in master_keys:
            raise ValueError("the current key id is not among the master keys")
        aead: dict[str, AESGCM] = {}
        for key_id, key in master_keys.items():
            if not _KEY_ID_RE.fullmatch(key_id):
                raise ValueError("key ids must be 1-32 characters of A-Z a-z 0-9 _ -")
            if not isinstance(key, bytes) or len(key) != KEY_LEN:
                raise ValueError(f"master key {key_id!r} must be {KEY_LEN} bytes")
            aead[key_id] = AESGCM(key)
        # Only the AESGCM objects are kept, not the raw bytes.
        self._aead = aead
        self._current = current

    def __repr__(self) -> str:
        return f"SecretBox(current={self._current!r}, key_ids={self.key_ids!r})"

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aead)

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt ``plaintext`` under the current key, bound to ``context``."""
        nonce = os.urandom(_NONCE_LEN)
        ciphertext = self._aead[self._current].encrypt(
            nonce, plaintext, _aad(self._current, context)
        )
        return ".".join((_VERSION, self._current, _b64encode(nonce), _b64encode(ciphertext)))

    def open(self, sealed: str, *, context: str) -> bytes:
        """Decrypt a value made by :meth:`seal` with the same ``context``.

        Raises :class:`SecretBoxError` on any failure.
        """
        key_id, nonce, ciphertext = _parse(sealed)
        aead = self._aead.get(key_id)
        if aead is None:
            raise SecretBoxError(f"sealed with unknown master key id {key_id!r}")
        try:
            return aead.decrypt(nonce, ciphertext, _aad(key_id, context))
        except InvalidTag:
            raise SecretBoxError(
                "sealed value does not authenticate (tampered, or wrong context)"
            ) from None

    def needs_reseal(self, sealed: str) -> bool:
        """True if ``sealed`` was made with a key other than the current one."""
        return _parse(sealed)[0] != self._current

    @classmethod
    def from_config(cls, value: str) -> Self:
        """Parse ONEAUTH_MASTER_KEY.

        Either one base64url key (its id is the first 8 hex digits of its SHA-256, which
        reveals nothing useful about a 256-bit key), or ``id1:key1,id2:key2,...`` where
        the first entry is the current key and the others only open older values.
        Standard base64 (``+/``) and ``=`` padding are accepted too. Errors name the
        position of the bad entry, never its content.
        """
        value = value.strip()
        if not value:
            raise ValueError(f"{_CONFIG_VAR} is empty")
        if ":" not in value and "," not in value:
            key = _decode_key(value, _CONFIG_VAR)
            key_id = hashlib.sha256(key).hexdigest()[:8]
            return cls({key_id: key}, key_id)
        keys: dict[str, bytes] = {}
        for n, entry in enumerate(value.split(","), start=1):
            where = f"{_CONFIG_VAR} entry {n}"
            key_id, colon, encoded = entry.strip().partition(":")
            key_id = key_id.strip()
            if not colon:
                raise ValueError(f"{where}: expected 'keyid:base64key'")
            if not _KEY_ID_RE.fullmatch(key_id):
                raise ValueError(f"{where}: key id must be 1-32 characters of A-Z a-z 0-9 _ -")
            if key_id in keys:
                raise ValueError(f"{where}: duplicate key id {key_id!r}")
            keys[key_id] = _decode_key(encoded, where)
        return cls(keys, next(iter(keys)))


def sealed_key_id(sealed: str) -> str:
    """The id of the key that sealed ``sealed`` (a master key's or an app's data key's).

    Raises :class:`SecretBoxError` if ``sealed`` is not a well-formed v1 value.
    """
    return _parse(sealed)[0]


def _aad(key_id: str, context: str) -> bytes:
    if not context:
        raise ValueError("context must be a non-empty string naming the secret's owner and use")
    # Neither the label nor the key id can contain NUL, so this encoding is unambiguous.
    return b"\x00".join((_AAD_LABEL, key_id.encode("ascii"), context.encode("utf-8")))


def _parse(sealed: str) -> tuple[str, bytes, bytes]:
    parts = sealed.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        raise SecretBoxError("not a v1 sealed value")
    _version, key_id, nonce_b64, ct_b64 = parts
    if not _KEY_ID_RE.fullmatch(key_id):
        raise SecretBoxError("sealed value has a malformed key id")
    nonce = _b64decode_strict(nonce_b64)
    ciphertext = _b64decode_strict(ct_b64)
    if nonce is None or ciphertext is None or len(nonce) != _NONCE_LEN:
        raise SecretBoxError("sealed value is malformed")
    if len(ciphertext) < _TAG_LEN:
        raise SecretBoxError("sealed value is truncated")
    return key_id, nonce, ciphertext


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode_strict(text: str) -> bytes | None:
    # urlsafe_b64decode silently skips foreign characters; be strict and canonical so one
    # sealed value has exactly one spelling.
    if not _B64URL_RE.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64encode(data) == text else None


def _decode_key(text: str, where: str) -> bytes:
    text = text.strip().rstrip("=").replace("+", "-").replace("/", "_")
    if not text or not _B64URL_RE.fullmatch(text):
        raise ValueError(f"{where}: key is not valid base64url")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: key is not valid base64url") from None
    if len(key) != KEY_LEN:
        raise ValueError(f"{where}: key must decode to {KEY_LEN} bytes, got {len(key)}")
    return key
