"""Per-app data-encryption keys (crypto-shredding, requirements K1-K4).

Each app has one random 256-bit data-encryption key (DEK). Its only stored form
is ``oneauth.app_keys.wrapped_dek``: the DEK sealed by the master key
(:class:`~oneauth.secretbox.SecretBox`) with the app and the DEK id in the
associated data. Every secret sealed for the app (signing keys, TOTP seeds,
upstream client secrets and tokens, webhook secrets, outbox links, flow
requests...) is sealed with the DEK, so ``apps delete``, which deletes the
``app_keys`` row in the transaction that drops the schema, leaves every copy of
that schema (a ``pg_dump``, a base backup, a replica's WAL) undecryptable, even
for a holder of the master key.

:class:`KeyRing` is a :class:`SecretBox` (the service's ``services.box``) that
routes by the associated data: a context ``app:<app_id>/...`` seals with that
app's DEK, anything else (the console's platform-wide values, the wrapping
itself) with the master key. So the many call sites that already bind the app in
their context keep calling ``box.seal``/``box.open``; :meth:`KeyRing.for_app`
gives an explicit per-app box. Values sealed with the master key before this
existed (a sealed string names its key id) still open; ``oneauth apps reseal``
moves them to the DEK (:mod:`oneauth.apps.sealed`).

The ring learns wrapped DEKs from registry records (``AppRecord.dek``, read with
the registry row: no extra query), and unwraps a DEK on first use, keeping a
bounded number unwrapped in memory. A context naming an app the ring has not
learned raises :class:`AppKeyNotLoaded` rather than falling back to the master
key: a silent fallback would make shredding depend on every caller's care.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
import psycopg

from oneauth.secretbox import KEY_LEN, SecretBox, SecretBoxError, sealed_key_id

__all__ = [
    "AppBox",
    "AppDek",
    "AppKeyNotLoaded",
    "KeyRing",
    "SyncLoader",
    "app_of_context",
    "create",
    "destroy",
    "ensure",
    "fetch",
    "fetch_async",
    "install",
    "new_dek_id",
    "rewrap_all",
]

Conn = psycopg.Connection[tuple[Any, ...]]

_DEK_ID_RE: Final = re.compile(r"dek-[0-9a-f]{20}")
# Contexts that name an app (every call site builds them from the app_id) ...
_APP_CONTEXT_RE: Final = re.compile(r"app:([a-z][a-z0-9-]{2,39})/")
_IDEMPOTENCY_CONTEXT_RE: Final = re.compile(r"oneauth/admin-idempotency\|([a-z][a-z0-9-]{2,39})\|")
# ... except the audit checkpoints' key proof: stored in the control schema,
# not the app's, and meant to be checked with the master key alone (A2).
_MASTER_ONLY_SUFFIXES: Final = ("/audit-checkpoint-key",)
DEFAULT_MAX_OPEN: Final = 4096


class AppKeyNotLoaded(SecretBoxError):
    """A value for an app was sealed or opened before the ring learned the app's DEK.

    A programming error (a path that did not go through the registry, the
    router or ``KeyRing.learn``), never a client's.
    """


@dataclass(frozen=True, slots=True)
class AppDek:
    """An app's wrapped DEK as stored in ``oneauth.app_keys``."""

    dek_id: str
    wrapped: str

    @classmethod
    def parse(cls, value: str | None) -> AppDek | None:
        """From the ``dek_id:wrapped`` column of REGISTRY_COLUMNS (None: no DEK yet)."""
        if not value:
            return None
        dek_id, _, wrapped = value.partition(":")
        return cls(dek_id, wrapped)


def new_dek_id() -> str:
    return "dek-" + secrets.token_hex(10)


def wrap_context(app_id: str, dek_id: str) -> str:
    # Not "app:...": the wrapping is done by the master key, never by a DEK.
    return f"oneauth/app-dek/{app_id}/{dek_id}"


def app_of_context(context: str) -> str | None:
    """The app a context is sealed for, or None for platform-wide (master-key) values."""
    match = _APP_CONTEXT_RE.match(context) or _IDEMPOTENCY_CONTEXT_RE.match(context)
    if match is None or context.endswith(_MASTER_ONLY_SUFFIXES):
        return None
    return match.group(1)


class AppBox:
    """One app's box: seals with its DEK; opens its DEK's values and legacy master ones."""

    __slots__ = ("_dek", "_master", "app_id", "dek_id")

    def __init__(self, app_id: str, dek_id: str, dek: bytes, master: SecretBox) -> None:
        self.app_id = app_id
        self.dek_id = dek_id
        self._dek = SecretBox({dek_id: dek}, dek_id)
        self._master = master

    def __repr__(self) -> str:
        return f"AppBox(app_id={self.app_id!r}, dek_id={self.dek_id!r})"

    def _check(self, context: str) -> None:
        owner = app_of_context(context)
        if owner is not None and owner != self.app_id:
            raise ValueError(f"context of app {owner!r} given to the box of {self.app_id!r}")

    def seal(self, plaintext: bytes, *, context: str) -> str:
        self._check(context)
        return self._dek.seal(plaintext, context=context)

    def open(self, sealed: str, *, context: str) -> bytes:
        self._check(context)
        if sealed_key_id(sealed) == self.dek_id:
            return self._dek.open(sealed, context=context)
        # A value from before the DEK (master-key format), until resealed.
        return SecretBox.open(self._master, sealed, context=context)

    def needs_reseal(self, sealed: str) -> bool:
        """True if ``sealed`` is not under this app's DEK (a master-key value)."""
        return sealed_key_id(sealed) != self.dek_id


class KeyRing(SecretBox):
    """The master keys plus every app's DEK, routed by context (module docstring)."""

    __slots__ = ("_max_open", "_open", "_wrapped", "loader")

    def __init__(
        self,
        master_keys: Mapping[str, bytes],
        current: str,
        *,
        max_open: int = DEFAULT_MAX_OPEN,
    ) -> None:
        if any(_DEK_ID_RE.fullmatch(key_id) for key_id in master_keys):
            raise ValueError("master key ids must not look like app data key ids (dek-...)")
        super().__init__(master_keys, current)
        # app_id -> wrapped DEK (None: the app has none yet, master-key sealing).
        # One short string per app ever seen, so not bounded beyond the apps.
        self._wrapped: dict[str, AppDek | None] = {}
        # app_id -> unwrapped box, least recently used first.
        self._open: OrderedDict[str, AppBox] = OrderedDict()
        self._max_open = max_open
        # Asked for an app no record taught the ring (rare: a path that seals
        # before any registry read); see SyncLoader.
        self.loader: Callable[[str], AppDek | None] | None = None

    @classmethod
    def with_apps(cls, master_key: str, *records: Any) -> KeyRing:
        """A ring from ONEAUTH_MASTER_KEY that knows these AppRecords' DEKs (the CLI)."""
        ring = cls.from_config(master_key)
        for record in records:
            ring.learn_record(record)
        return ring

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current_key_id!r}, apps={len(self._wrapped)})"

    # --- learning --------------------------------------------------------------

    def learn(self, app_id: str, dek: AppDek | None) -> None:
        """Record what the control schema says about ``app_id``'s DEK.

        ``None`` (no DEK row) never replaces a known DEK: a stale record read
        before ``migrate`` created the DEK must not switch an app back to the
        master key. A destroyed DEK is dropped with :meth:`forget`.
        """
        known = self._wrapped.get(app_id)
        if dek is None:
            if app_id not in self._wrapped:
                self._wrapped[app_id] = None
            return
        if known != dek:
            self._wrapped[app_id] = dek
            opened = self._open.get(app_id)
            if opened is not None and opened.dek_id != dek.dek_id:
                del self._open[app_id]

    def learn_record(self, record: Any) -> None:
        """Learn from an AppRecord (its ``dek`` field); deleted apps are forgotten."""
        if record.status == "deleted":
            self.forget(record.app_id)
        else:
            self.learn(record.app_id, record.dek)

    def forget(self, app_id: str) -> None:
        self._wrapped.pop(app_id, None)
        self._open.pop(app_id, None)

    def knows(self, app_id: str) -> bool:
        return app_id in self._wrapped

    def dek_id_of(self, app_id: str) -> str | None:
        dek = self._wrapped.get(app_id)
        return None if dek is None else dek.dek_id

    # --- boxes ----------------------------------------------------------------

    def for_app(self, app_id: str) -> AppBox:
        """The app's box (its DEK unwrapped on first use). Raises AppKeyNotLoaded."""
        opened = self._open.get(app_id)
        if opened is not None:
            self._open.move_to_end(app_id)
            return opened
        dek = self._wrapped.get(app_id)
        if dek is None:
            state = (
                "has no data key (run `oneauth migrate`)"
                if app_id in self._wrapped
                else ("is not loaded in this process")
            )
            raise AppKeyNotLoaded(f"the data key of app {app_id!r} {state}")
        opened = AppBox(app_id, dek.dek_id, self.unwrap(app_id, dek), self)
        self._open[app_id] = opened
        while len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return opened

    def unwrap(self, app_id: str, dek: AppDek) -> bytes:
        raw = SecretBox.open(self, dek.wrapped, context=wrap_context(app_id, dek.dek_id))
        if len(raw) != KEY_LEN:
            raise SecretBoxError("an app data key has the wrong length")
        return raw

    def wrap(self, app_id: str, dek_id: str, raw: bytes) -> str:
        return SecretBox.seal(self, raw, context=wrap_context(app_id, dek_id))

    def _ensure_known(self, app_id: str) -> None:
        if app_id not in self._wrapped and self.loader is not None:
            self.learn(app_id, self.loader(app_id))

    def _box_for(self, context: str) -> AppBox | None:
        app_id = app_of_context(context)
        if app_id is None:
            return None
        self._ensure_known(app_id)
        if app_id in self._wrapped and self._wrapped[app_id] is None:
            return None  # an app from before DEKs, until `oneauth migrate` gives it one
        return self.for_app(app_id)

    # --- the SecretBox interface, routed -------------------------------------

    def seal(self, plaintext: bytes, *, context: str) -> str:
        box = self._box_for(context)
        if box is None:
            return super().seal(plaintext, context=context)
        return box.seal(plaintext, context=context)

    def open(self, sealed: str, *, context: str) -> bytes:
        key_id = sealed_key_id(sealed)
        if key_id in self.key_ids:
            return super().open(sealed, context=context)  # master-key (legacy) value
        if not _DEK_ID_RE.fullmatch(key_id):
            raise SecretBoxError(f"sealed with unknown key id {key_id!r}")
        app_id = app_of_context(context)
        if app_id is not None:
            self._ensure_known(app_id)
        if app_id is not None and app_id not in self._wrapped:
            raise AppKeyNotLoaded(f"the data key of app {app_id!r} is not loaded in this process")
        if app_id is None or self.dek_id_of(app_id) != key_id:
            # Another app's DEK, or a destroyed one: nothing here opens it.
            raise SecretBoxError("sealed with a data key this app does not hold")
        return self.for_app(app_id).open(sealed, context=context)

    def needs_reseal(self, sealed: str) -> bool:
        """Master-key values: sealed with a key other than the current master key."""
        return sealed_key_id(sealed) != self.current_key_id


class SyncLoader:
    """The ring's fallback for an app it was not taught: one blocking primary-key read.

    The registry and the router teach the ring every app they hand out, so in
    the service this runs only for code that seals for an app before reading
    its record (tests, scripts), once per app and process. It blocks the
    event loop for that one query, which beats the alternative: sealing with
    the master key would silently exempt the value from shredding.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: Conn | None = None

    def __call__(self, app_id: str) -> AppDek | None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(
                            self._dsn, autocommit=True, application_name="oneauth-keyring"
                        )
                    return fetch(self._conn, app_id)
                except psycopg.OperationalError:
                    self._conn = None  # a restarted server: reconnect once
                    if attempt == 2:
                        raise
        return None  # pragma: no cover (the loop returns or raises)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# --- the app_keys table (operator role: provisioning, migrate, delete, rotation) ----


def fetch(conn: Conn, app_id: str) -> AppDek | None:
    row = conn.execute(
        "SELECT dek_id, wrapped_dek FROM oneauth.app_keys WHERE app_id = %s", (app_id,)
    ).fetchone()
    return None if row is None else AppDek(str(row[0]), str(row[1]))


async def fetch_async(conn: asyncpg.Connection, app_id: str) -> AppDek | None:
    row = await conn.fetchrow(
        "SELECT dek_id, wrapped_dek FROM oneauth.app_keys WHERE app_id = $1", app_id
    )
    return None if row is None else AppDek(row["dek_id"], row["wrapped_dek"])


def create(conn: Conn, ring: KeyRing, app_id: str) -> AppDek:
    """A new random DEK for ``app_id``, wrapped by the current master key, stored."""
    dek_id = new_dek_id()
    dek = AppDek(dek_id, ring.wrap(app_id, dek_id, os.urandom(KEY_LEN)))
    conn.execute(
        "INSERT INTO oneauth.app_keys (app_id, dek_id, wrapped_dek, master_key_id)"
        " VALUES (%s, %s, %s, %s)",
        (app_id, dek.dek_id, dek.wrapped, ring.current_key_id),
    )
    ring.learn(app_id, dek)
    return dek


def ensure(conn: Conn, ring: KeyRing, app_id: str) -> tuple[AppDek, bool]:
    """The app's DEK, created if missing (apps from before DEKs); (dek, created)."""
    existing = fetch(conn, app_id)
    if existing is not None:
        ring.learn(app_id, existing)
        return existing, False
    dek = create(conn, ring, app_id)
    # Touch the registry row: its change notice makes every process re-read the
    # record (and so learn the DEK) at once rather than at the registry TTL.
    conn.execute("UPDATE oneauth.apps SET updated_at = now() WHERE app_id = %s", (app_id,))
    return dek, True


def install(
    conn: Conn, ring: KeyRing, app_id: str, dek: AppDek, *, replace: bool = False
) -> AppDek:
    """Store a DEK from an export archive (``apps import`` into the same app_id).

    The wrapped key must open under one of this installation's master keys with
    ``app_id`` bound in, so an archive of another app (or installation) is refused
    with :class:`SecretBoxError`; it is stored rewrapped under the current master
    key. ``replace`` swaps an existing row (``--replace``); else one must not exist.
    For a clone, do not install: ``ring.learn(src_app, dek)`` and
    :func:`oneauth.apps.sealed.reseal` under the clone's own new DEK.
    """
    if not _DEK_ID_RE.fullmatch(dek.dek_id):
        raise SecretBoxError("not an app data key id")
    stored = AppDek(dek.dek_id, ring.wrap(app_id, dek.dek_id, ring.unwrap(app_id, dek)))
    if replace:
        conn.execute("DELETE FROM oneauth.app_keys WHERE app_id = %s", (app_id,))
    conn.execute(
        "INSERT INTO oneauth.app_keys (app_id, dek_id, wrapped_dek, master_key_id)"
        " VALUES (%s, %s, %s, %s)",
        (app_id, stored.dek_id, stored.wrapped, ring.current_key_id),
    )
    ring.learn(app_id, stored)
    return stored


def destroy(conn: Conn, app_id: str) -> str | None:
    """Delete the app's wrapped DEK (crypto-shredding); the destroyed dek_id, if any.

    Must run in the transaction that drops the schema: both happen or neither.
    """
    row = conn.execute(
        "DELETE FROM oneauth.app_keys WHERE app_id = %s RETURNING dek_id", (app_id,)
    ).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class RewrapReport:
    rewrapped: int
    unchanged: int
    master_key_id: str


def rewrap_all(conn: Conn, ring: KeyRing, *, batch: int = 500) -> RewrapReport:
    """Rewrap every DEK not under the current master key (master-key rotation).

    Only ``oneauth.app_keys`` (and the receipt keys) change: no app schema is
    entered, so rotation costs one row update per app. Batches of ``batch``
    rows, each its own transaction, so a long run holds no long locks and a
    re-run resumes.
    """
    from oneauth.apps import receipts

    current = ring.current_key_id
    rewrapped = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                "SELECT app_id, dek_id, wrapped_dek FROM oneauth.app_keys"
                " WHERE master_key_id <> %s ORDER BY app_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (current, batch),
            ).fetchall()
            for app_id, dek_id, wrapped in rows:
                raw = ring.unwrap(app_id, AppDek(dek_id, wrapped))
                conn.execute(
                    "UPDATE oneauth.app_keys SET wrapped_dek = %s, master_key_id = %s,"
                    " rewrapped_at = now() WHERE app_id = %s",
                    (ring.wrap(app_id, dek_id, raw), current, app_id),
                )
        rewrapped += len(rows)
        if len(rows) < batch:
            break
    receipts.rewrap_keys(conn, ring)
    row = conn.execute("SELECT count(*) FROM oneauth.app_keys").fetchone()
    total = int(row[0]) if row else 0
    return RewrapReport(rewrapped, total - rewrapped, current)
