"""Password policy and password hashing (SECURITY.md P1, P2, P4).

Policy, following NIST SP 800-63B section 3.1.1.2 (rev. 4) and OWASP ASVS V2.1 / V6.2:

* length 8..128, counted in Unicode code points of the NFC form of what was typed;
  nothing is truncated, stripped or rejected for its composition (no "one digit, one
  symbol" rules, which NIST and ASVS advise against);
* the password must not be a common or known-breached one (offline list shipped in
  ``common_passwords.txt``, compared case-insensitively), nor contain the user's email
  local part or the app's name (the "context-specific words" of NIST SP 800-63B).

Normalisation: both the policy and the hasher apply Unicode NFC first (the OpaqueString
profile of RFC 8265 minus its space mapping), so "é" typed as one code point on one
device and as "e" + combining accent on another is the same password. NFC only merges
canonically equivalent encodings, so no visible distinction is lost (NFKC would fold
e.g. full-width letters into ASCII).

Hashing: Argon2id with the OWASP Password Storage Cheat Sheet parameters
(m=19 MiB, t=2, p=1) set explicitly, run on a bounded thread pool so the event loop
never blocks and a login flood is refused (:class:`HasherBusy`) instead of queued without
bound.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Final, Literal, NamedTuple, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "DEFAULT_POLICY",
    "HasherBusy",
    "PasswordHasher",
    "PasswordPolicy",
    "ReasonCode",
    "VerifyResult",
    "WeakPassword",
    "check_password",
    "is_common_password",
    "normalize_password",
]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

ReasonCode = Literal["too_short", "too_long", "common", "contains_email", "context", "invalid"]

# NIST SP 800-63B: at least 8 characters; verifiers SHOULD permit at least 64.
_MIN_ALLOWED_MIN_LENGTH: Final = 8
_MIN_ALLOWED_MAX_LENGTH: Final = 64
# Email local parts and app names shorter than this are too generic to ban as substrings
# ("ab@example.com" must not forbid every password containing "ab").
_MIN_CONTEXT_WORD: Final = 4


# --------------------------------------------------------------------------- policy


class WeakPassword(ValueError):
    """The password breaks the policy; ``reason_code`` is stable, ``message`` is for people."""

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason_code: ReasonCode = reason_code
        self.message = message


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Length limits in code points (after NFC). Stricter values are allowed, weaker are not."""

    min_length: int = 8
    max_length: int = 128

    def __post_init__(self) -> None:
        # The common-password list only holds entries of >= 8 characters (shorter ones are
        # caught by the length rule), so a lower minimum would also open a hole in P2.
        if self.min_length < _MIN_ALLOWED_MIN_LENGTH:
            raise ValueError(f"min_length must be >= {_MIN_ALLOWED_MIN_LENGTH}")
        if self.max_length < max(self.min_length, _MIN_ALLOWED_MAX_LENGTH):
            raise ValueError(f"max_length must be >= min_length and >= {_MIN_ALLOWED_MAX_LENGTH}")


DEFAULT_POLICY: Final = PasswordPolicy()


def normalize_password(password: str) -> str:
    """Return the NFC form that is length-checked and hashed (RFC 8265 section 4.2)."""
    return unicodedata.normalize("NFC", password)


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Loaded on first use, once per process: ~14k entries, about 1 MB in memory.
    text = (
        resources.files("oneauth.identity")
        .joinpath("common_passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.casefold() for line in text.splitlines() if line and not line.startswith("#")
    )


def is_common_password(password: str) -> bool:
    """True if the password is on the shipped common/breached list (case-insensitive)."""
    return normalize_password(password).casefold() in _common_passwords()


def check_password(
    password: str,
    *,
    email: str | None = None,
    app_name: str | None = None,
    policy: PasswordPolicy = DEFAULT_POLICY,
) -> None:
    """Raise :class:`WeakPassword` if ``password`` breaks the policy; return None if it passes.

    Checks, in order: ``invalid`` (not encodable as UTF-8, i.e. lone surrogates from a
    JSON ``\\ud800`` escape), ``too_short``, ``too_long``, ``common``, ``contains_email``
    (the email's local part, when it has >= 4 characters), ``context`` (the app's name,
    when it has >= 4 characters). All comparisons are case-insensitive.
    """
    normalized = normalize_password(password)
    try:
        normalized.encode("utf-8")
    except UnicodeEncodeError:
        raise WeakPassword("invalid", "The password contains invalid characters.") from None
    length = len(normalized)  # code points, as NIST SP 800-63B asks
    if length < policy.min_length:
        raise WeakPassword(
            "too_short", f"The password must be at least {policy.min_length} characters long."
        )
    if length > policy.max_length:
        raise WeakPassword(
            "too_long", f"The password must be at most {policy.max_length} characters long."
        )
    folded = normalized.casefold()
    if folded in _common_passwords():
        raise WeakPassword(
            "common", "This password is too common or has appeared in a data breach."
        )
    if email and any(word in folded for word in _email_words(email)):
        raise WeakPassword("contains_email", "The password must not contain your email address.")
    if app_name and any(word in folded for word in _context_words(app_name)):
        raise WeakPassword("context", "The password must not contain the name of this service.")


def _context_words(text: str) -> set[str]:
    # "My Shop" must also catch "myshop2024": compare with and without separators.
    folded = normalize_password(text).casefold().strip()
    squeezed = "".join(ch for ch in folded if ch.isalnum())
    return {w for w in (folded, squeezed) if len(w) >= _MIN_CONTEXT_WORD}


def _email_words(email: str) -> set[str]:
    local = email.rpartition("@")[0] or email
    words = _context_words(local)
    base, plus, _tag = local.partition("+")  # "alice+news@x" is still alice
    if plus:
        words |= _context_words(base)
    return words


# --------------------------------------------------------------------------- hashing

# OWASP Password Storage Cheat Sheet, Argon2id: any of these (memory KiB, iterations)
# with p=1 is an equivalent minimum. Anything that is at least as strong on both axes as
# one of them passes the strength check.
_OWASP_MINIMUMS: Final = ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
_PER_WORKER_PENDING: Final = 32


class HasherBusy(RuntimeError):
    """Too much hashing work is pending; the HTTP layer answers 503 with Retry-After."""


class VerifyResult(NamedTuple):
    """Outcome of :meth:`PasswordHasher.verify_and_rehash`."""

    ok: bool
    new_hash: str | None  # set when the stored hash used old parameters: store it


class PasswordHasher:
    """Argon2id hashing (RFC 9106) with OWASP parameters, off the event loop.

    ``max_workers`` threads (default: CPU count) run argon2; argon2-cffi releases the GIL,
    so they scale with cores. At most ``max_pending`` calls (running plus queued; default
    32 per worker, i.e. at most ~0.5 s of queueing at ~17 ms a hash) may be outstanding
    across the async API; one more raises :class:`HasherBusy` at once. Each running hash
    holds ``memory_cost`` KiB, so peak memory is about ``max_workers * memory_cost``.

    Parameters weaker than OWASP's minimums are refused unless ``allow_weak=True``
    (for tests only).
    """

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 19456,
        parallelism: int = 1,
        hash_len: int = 32,
        salt_len: int = 16,
        max_workers: int | None = None,
        max_pending: int | None = None,
        allow_weak: bool = False,
    ) -> None:
        if not allow_weak:
            _check_strength(time_cost, memory_cost, parallelism, hash_len, salt_len)
        workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
        pending = max_pending if max_pending is not None else _PER_WORKER_PENDING * workers
        if workers < 1 or pending < 1:
            raise ValueError("max_workers and max_pending must be >= 1")
        self._ph = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=hash_len,
            salt_len=salt_len,
            type=argon2.Type.ID,
        )
        self.max_workers = workers
        self.max_pending = pending
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        # A threading semaphore (not asyncio's) so the limit holds across event loops and is
        # released from the worker thread's done-callback, even if the awaiter was cancelled.
        self._slots = threading.BoundedSemaphore(pending)
        # P4: unknown users are "verified" against this so they cost the same time as real
        # ones. Same parameters as real hashes, random secret nobody knows.
        self._dummy_hash = self._ph.hash(secrets.token_urlsafe(32))

    @property
    def parameters(self) -> argon2.Parameters:
        """The Argon2 parameters new hashes are made with."""
        return argon2.extract_parameters(self._dummy_hash)

    # ---- sync API (CLI, tests). Blocks the calling thread for one hash.

    def hash_sync(self, password: str) -> str:
        """Hash ``password`` (after NFC) into a PHC string ``$argon2id$v=19$m=...``."""
        try:
            encoded = _encode(password)
        except UnicodeEncodeError:
            raise ValueError("password contains characters that are not valid Unicode") from None
        return self._ph.hash(encoded)

    def verify_sync(self, encoded_hash: str, password: str) -> bool:
        """True if ``password`` matches; False on mismatch or on a malformed stored hash."""
        try:
            secret = _encode(password)
        except UnicodeEncodeError:
            return False
        try:
            return self._ph.verify(encoded_hash, secret)
        except VerifyMismatchError:
            return False
        except InvalidHashError:
            # Corrupt row or a non-argon2 hash: fail closed, and say so without the value.
            _log.warning("password hash is malformed; treating as a mismatch")
            return False
        except VerificationError:
            _log.warning("password hash could not be verified; treating as a mismatch")
            return False

    def needs_rehash(self, encoded_hash: str) -> bool:
        """True if the hash was made with other parameters than the current ones (P1)."""
        try:
            return self._ph.check_needs_rehash(encoded_hash)
        except (InvalidHashError, ValueError):
            return True

    # ---- async API (request handlers). Never blocks the event loop.

    async def hash(self, password: str) -> str:
        """Hash on the worker pool. Raises :class:`HasherBusy` when the pool is saturated."""
        return await self._submit(self.hash_sync, password)

    async def verify(self, encoded_hash: str, password: str) -> bool:
        """Verify on the worker pool; False on mismatch. Raises :class:`HasherBusy`."""
        return await self._submit(self.verify_sync, encoded_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real :meth:`verify` for a login to an unknown account (P4).

        Goes through the same pool and busy limit as :meth:`verify`, so neither timing nor
        a :class:`HasherBusy` answer tells whether the account exists.
        """
        await self._submit(self.verify_sync, self._dummy_hash, password)

    async def verify_and_rehash(self, encoded_hash: str, password: str) -> VerifyResult:
        """Verify, and if the hash's parameters are outdated, return a fresh hash to store.

        A saturated pool at the rehash step skips the rehash (it happens at the next login)
        rather than failing a login that already succeeded.
        """
        if not await self.verify(encoded_hash, password):
            return VerifyResult(False, None)
        if not self.needs_rehash(encoded_hash):
            return VerifyResult(True, None)
        try:
            return VerifyResult(True, await self.hash(password))
        except HasherBusy:
            return VerifyResult(True, None)

    def close(self) -> None:
        """Stop the worker threads after the work already submitted."""
        self._executor.shutdown(wait=True)

    async def _submit(self, fn: Callable[..., _T], *args: str) -> _T:
        if not self._slots.acquire(blocking=False):
            raise HasherBusy("password hashing is saturated; retry shortly")
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        # Runs on completion *or* cancellation of a queued job, so no slot ever leaks.
        future.add_done_callback(lambda _f: self._slots.release())
        return await asyncio.wrap_future(future)


def _encode(password: str) -> bytes:
    return normalize_password(password).encode("utf-8")


def _check_strength(
    time_cost: int, memory_cost: int, parallelism: int, hash_len: int, salt_len: int
) -> None:
    strong_enough = any(memory_cost >= m and time_cost >= t for m, t in _OWASP_MINIMUMS)
    # RFC 9106 section 3.1: 128-bit salt; 256-bit tag gives margin over the 128-bit minimum.
    if not strong_enough or parallelism < 1 or hash_len < 16 or salt_len < 16:
        raise ValueError(
            "argon2 parameters are below the OWASP minimum "
            "(m=19456 KiB, t=2, p=1 or an equivalent pair; hash_len and salt_len >= 16)"
        )
