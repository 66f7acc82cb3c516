"""THE list of sealed columns of an app schema, and moving sealed values between keys (K1, K4).

Every column of ``sql/app/`` that holds a value sealed by the secret box is
listed once in :data:`SEALED`, with the context its value is bound to (built by
the same function the writing code uses) and what a clone does with it:

* ``keep``: the value belongs to the app's configuration or users (TOTP seeds,
  upstream client secrets and kept tokens, webhook secrets). A clone keeps it,
  resealed under the clone's data key and context.
* ``drop``: the value is ephemeral (flows, upstream requests, pending links,
  outbox links, idempotency answers) or must not survive a clone (signing
  keys: a clone gets new ones, so the original's tokens are not valid there).
  A clone deletes these rows; the legacy reseal still moves signing keys.

:func:`reseal` walks the list: ``src_app == dst_app`` moves an app's values
sealed with the master key (from before per-app keys) to its data key, so that
shredding covers them (``oneauth apps reseal``); ``src_app != dst_app`` is the
clone step of ``oneauth apps import --as`` (the schema's rows restored into the
destination schema, still sealed for the source). A test checks that every
``*_sealed`` column of the app templates is listed here.

SQL here takes the connection first: a psycopg connection in the destination
app's context (role and search_path set, e.g. ``ops.app_context``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from oneauth.apps.dek import KeyRing
from oneauth.secretbox import SecretBox, SecretBoxError

Conn = psycopg.Connection[tuple[Any, ...]]
OnClone = Literal["keep", "drop"]
# (app_id, the row's key columns) -> the associated data the value is sealed with.
ContextOf = Callable[[str, Mapping[str, Any]], str]


def _signing_key(app_id: str, row: Mapping[str, Any]) -> str:
    from oneauth.tokens.keystore import key_context

    return key_context(app_id, str(row["kid"]))


def _totp(app_id: str, row: Mapping[str, Any]) -> str:
    from oneauth.strategies.totp import seal_context

    return seal_context(app_id, row["user_id"], row["id"])


def _idp_secret(app_id: str, row: Mapping[str, Any]) -> str:
    from oneauth.federation.providers import seal_context

    return seal_context(app_id, str(row["id"]))


def _idp_tokens(app_id: str, row: Mapping[str, Any]) -> str:
    from oneauth.federation.tokens import context

    return context(app_id, str(row["provider_id"]), str(row["issuer"]), str(row["subject"]))


def _webhook_secret(app_id: str, row: Mapping[str, Any]) -> str:
    from oneauth.webhooks.endpoints import seal_context

    return seal_context(app_id, str(row["id"]))


@dataclass(frozen=True, slots=True)
class SealedColumn:
    table: str
    # The columns the context is built from; the first ones identify the row.
    keys: tuple[str, ...]
    column: str
    on_clone: OnClone
    # None: ephemeral, never resealed (it expires within hours); dropped on clone.
    context: ContextOf | None
    # For values inside a JSON column: the key holding the sealed string.
    json_key: str | None = None
    # The columns of ``keys`` that identify the row for the UPDATE.
    identity: tuple[str, ...] = ()

    @property
    def row_identity(self) -> tuple[str, ...]:
        return self.identity or self.keys[:1]


SEALED: Final[tuple[SealedColumn, ...]] = (
    SealedColumn("signing_keys", ("kid",), "private_sealed", "drop", _signing_key),
    SealedColumn("mfa_factors", ("id", "user_id"), "secret_sealed", "keep", _totp),
    SealedColumn("identity_providers", ("id",), "client_secret_sealed", "keep", _idp_secret),
    SealedColumn(
        "user_identities",
        ("id", "provider_id", "issuer", "subject"),
        "tokens_sealed",
        "keep",
        _idp_tokens,
    ),
    SealedColumn("webhook_endpoints", ("id",), "secret_sealed", "keep", _webhook_secret),
    # Ephemeral: minutes to a day, bound to flows and requests that a clone or
    # a deletion ends anyway.
    SealedColumn("federation_pending_links", ("id",), "tokens_sealed", "drop", None),
    SealedColumn("federation_requests", ("state_hash",), "verifier_sealed", "drop", None),
    SealedColumn("outbox", ("id",), "secrets_sealed", "drop", None),
    SealedColumn(
        "admin_idempotency", ("actor_type", "actor_id", "key"), "response_sealed", "drop", None
    ),
    SealedColumn("auth_flows", ("id",), "data", "drop", None, json_key="authorize"),
)


@dataclass
class ResealReport:
    src_app: str
    dst_app: str
    # table.column -> values resealed (under dst's data key and context)
    resealed: dict[str, int] = field(default_factory=dict)
    # table -> rows deleted (clone only: "drop" columns)
    dropped: dict[str, int] = field(default_factory=dict)
    # table.column -> values already under dst's data key (legacy reseal)
    current: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "src_app": self.src_app,
            "dst_app": self.dst_app,
            "resealed": self.resealed,
            "dropped": self.dropped,
            "current": self.current,
        }


def reseal(conn: Conn, box: SecretBox, *, src_app: str, dst_app: str) -> ResealReport:
    """Reopen every sealed value of the current schema under ``src_app``'s key and
    context, seal it under ``dst_app``'s (module docstring).

    ``box`` is a :class:`KeyRing` that knows both apps' data keys (``learn``;
    for a clone, the source's wrapped key from the archive). Runs in the
    caller's transaction on the schema in ``conn``'s search_path (the
    destination's). A value that does not open under the source raises
    :class:`SecretBoxError`, naming the table and column, never the value:
    the caller's transaction then rolls back as a whole.
    """
    if not isinstance(box, KeyRing):
        raise TypeError("reseal needs the KeyRing (services.box / KeyRing.with_apps)")
    clone = src_app != dst_app
    target = box.for_app(dst_app)
    report = ResealReport(src_app, dst_app)
    for entry in SEALED:
        name = f"{entry.table}.{entry.column}"
        if clone and entry.on_clone == "drop":
            status = conn.execute(
                sql.SQL("DELETE FROM {}").format(sql.Identifier(entry.table))
            ).rowcount
            report.dropped[entry.table] = max(status, 0)
            continue
        if entry.context is None:
            continue  # ephemeral: left to expire
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in (*entry.keys, entry.column))
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL FOR UPDATE").format(
                cols, sql.Identifier(entry.table), sql.Identifier(entry.column)
            )
        ).fetchall()
        moved = kept = 0
        for values in rows:
            row = dict(zip((*entry.keys, entry.column), values, strict=True))
            sealed = str(row[entry.column])
            if not clone and not target.needs_reseal(sealed):
                kept += 1
                continue
            try:
                plain = box.open(sealed, context=entry.context(src_app, row))
            except SecretBoxError as exc:
                where_text = ", ".join(f"{c}={row[c]}" for c in entry.row_identity)
                raise SecretBoxError(f"{name} ({where_text}) does not open: {exc}") from None
            fresh = target.seal(plain, context=entry.context(dst_app, row))
            where = sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(c)) for c in entry.row_identity
            )
            conn.execute(
                sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(
                    sql.Identifier(entry.table), sql.Identifier(entry.column), where
                ),
                (fresh, *(row[c] for c in entry.row_identity)),
            )
            moved += 1
        report.resealed[name] = moved
        if not clone:
            report.current[name] = kept
    return report


def sealed_values(conn: Conn) -> list[tuple[str, str]]:
    """(table.column, sealed value) of every listed value in the current schema (tests, audits)."""
    found: list[tuple[str, str]] = []
    for entry in SEALED:
        rows = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                sql.Identifier(entry.column),
                sql.Identifier(entry.table),
                sql.Identifier(entry.column),
            )
        ).fetchall()
        for (value,) in rows:
            if entry.json_key is not None:
                data = value if isinstance(value, dict) else json.loads(value)
                value = data.get(entry.json_key) if isinstance(data, dict) else None
                if not value:
                    continue
            found.append((f"{entry.table}.{entry.column}", str(value)))
    return found
