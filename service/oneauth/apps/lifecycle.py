"""Provision, suspend, resume and delete apps (synchronous, psycopg).

Each operation is one transaction: provisioning creates the registry row, the
app's NOLOGIN role, its schema and every app migration, or nothing at all.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from oneauth.apps import dek, receipts
from oneauth.apps.models import REGISTRY_COLUMNS, AppRecord, record_from_row
from oneauth.db import ops, roles, templates
from oneauth.db.naming import (
    AppNames,
    is_reserved_app_id,
    names_for,
    validate_app_id,
    validate_new_app_id,
)
from oneauth.settings import Settings

Conn = psycopg.Connection[tuple[Any, ...]]
# Runs inside the provisioning transaction, in the new app's context (role and
# search_path set): seeds what every app needs (signing keys, default client).
ProvisionHook = Callable[[Conn, AppRecord, Settings], dict[str, Any]]


class AppError(RuntimeError):
    """A lifecycle request that cannot be carried out; the message says why."""


class AppConflict(AppError):
    pass


class AppMissing(AppError):
    pass


@dataclass(frozen=True)
class ProvisionResult:
    app: AppRecord
    created: bool
    extra: dict[str, Any]


def validate_display_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= 200:
        raise AppError("display name must be 1 to 200 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise AppError("display name must not contain control characters")
    return name


def seed_signing_keys(conn: Conn, app: AppRecord, settings: Settings) -> dict[str, Any]:
    """An active and a pre-published next key for the app's algorithm and RS256."""
    from oneauth.apps.dek import KeyRing
    from oneauth.tokens import keystore

    # The record carries the app's wrapped DEK (created before the hooks run).
    box = KeyRing.with_apps(settings.master_key, app)
    return {"signing_keys": keystore.seed(conn, app, box)}


def seed_default_client(conn: Conn, app: AppRecord, settings: Settings) -> dict[str, Any]:
    """The first-party public client that the JSON API (/v1/login ...) issues tokens to.

    Idempotent, like every hook: provisioning and ``migrate`` both run them.
    """
    from oneauth.oauth import clients

    existing = conn.execute(
        "SELECT client_id FROM clients WHERE first_party AND kind = 'public'"
        " AND disabled_at IS NULL ORDER BY created_at LIMIT 1"
    ).fetchone()
    if existing is not None:
        return {"default_client_id": existing[0]}
    client, _ = clients.create(conn, clients.default_client_spec())
    return {"default_client_id": client.client_id}


def default_hooks() -> Sequence[ProvisionHook]:
    return (seed_signing_keys, seed_default_client)


def provision(
    conn: Conn,
    settings: Settings,
    app_id: str,
    display_name: str,
    *,
    app_settings: dict[str, Any] | None = None,
    hooks: Sequence[ProvisionHook] | None = None,
    sql_root: Path | None = None,
    allow_reserved: bool = False,
    schema_version: int | None = None,
) -> ProvisionResult:
    """Create an app, or confirm that an identical one exists (idempotent).

    Reserved ids (``platform``, ``console``, ``admin``) are refused: only
    ``oneauth platform init`` passes ``allow_reserved`` for the control plane.
    ``schema_version`` stops the app migrations there (``apps import`` loads an
    older archive's rows first and migrates after).
    """
    if allow_reserved:
        validate_app_id(app_id)
    else:
        validate_new_app_id(app_id)
    display_name = validate_display_name(display_name)
    wanted_settings = app_settings or {}
    from oneauth.apps.policy import PolicyError, parse

    try:
        parse(wanted_settings)
    except PolicyError as exc:
        raise AppError(str(exc)) from None
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{app_id}")
        existing = _fetch(conn, app_id, for_update=True)
        if existing is not None:
            if existing.status == "deleted":
                raise AppConflict(
                    f"app {app_id!r} was deleted; an app_id is never reused, choose another"
                )
            if existing.display_name != display_name:
                raise AppConflict(
                    f"app {app_id!r} exists with name {existing.display_name!r}, "
                    f"not {display_name!r}"
                )
            if app_settings is not None and existing.settings != wanted_settings:
                raise AppConflict(f"app {app_id!r} exists with different settings")
            return ProvisionResult(app=existing, created=False, extra={})

        namespace, _ = roles.installation(conn)
        names = names_for(app_id, namespace)  # D2: role names carry the namespace
        conn.execute(
            "INSERT INTO oneauth.apps"
            " (app_id, display_name, schema_name, role_name, role_namespace, settings)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                app_id,
                display_name,
                names.schema,
                names.role,
                namespace,
                json.dumps(wanted_settings),
            ),
        )
        role, schema = sql.Identifier(names.role), sql.Identifier(names.schema)
        try:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(role))
        except psycopg.errors.DuplicateObject:
            raise AppConflict(
                f"database role {names.role} already exists but no app {app_id!r} is "
                "registered here; remove the stray role first (another installation "
                "on this cluster with the same role namespace?)"
            ) from None
        # The operator and the service role may SET ROLE to the app role but,
        # being NOINHERIT, have no rights on the app schema without doing so (B2).
        roles.grant_app_role(conn, names.role)
        try:
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, role))
        except psycopg.errors.DuplicateSchema:
            raise AppConflict(
                f"schema {names.schema} already exists but no app {app_id!r} is registered"
            ) from None
        # The app's data-encryption key (K1): every secret the hooks seal for
        # the app is sealed with it; the record read next carries it.
        dek.create(conn, dek.KeyRing.from_config(settings.master_key), app_id)
        record = _fetch(conn, app_id)
        assert record is not None
        extra: dict[str, Any] = {}
        with ops.app_context(conn, names):
            conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
            result = ops.apply_templates(conn, "app", names.schema, sql_root, upto=schema_version)
            for hook in default_hooks() if hooks is None else hooks:
                extra.update(hook(conn, record, settings))
        conn.execute(
            "UPDATE oneauth.apps SET schema_version = %s, updated_at = now() WHERE app_id = %s",
            (result.version, app_id),
        )
        # A new app has no mail: delivery workers need not look into it until
        # its outbox's statistics counter moves (oneauth.mail.worker).
        conn.execute(
            "INSERT INTO oneauth.mail_sweep (app_id, changes) VALUES (%s, 0)"
            " ON CONFLICT (app_id) DO NOTHING",
            (app_id,),
        )
        conn.execute(  # nor its webhook deliveries (oneauth.webhooks.worker)
            "INSERT INTO oneauth.webhook_sweep (app_id, changes) VALUES (%s, 0)"
            " ON CONFLICT (app_id) DO NOTHING",
            (app_id,),
        )
        record = _fetch(conn, app_id)
        assert record is not None
    return ProvisionResult(app=record, created=True, extra=extra)


@dataclass(frozen=True)
class ConfigureResult:
    app: AppRecord
    # key -> (old, new) as stored; None where the key was absent (the default).
    changes: dict[str, tuple[Any, Any]]


def parse_setting_value(raw: str) -> Any:
    """``--set key=value``: JSON when it parses (true, 600, ["a"]), else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def configure(
    conn: Conn,
    app_id: str,
    *,
    set_values: dict[str, Any] | None = None,
    unset: Sequence[str] = (),
    display_name: str | None = None,
) -> ConfigureResult:
    """Change an app's settings after provisioning: validated, audited, broadcast.

    The whole result goes through the one policy parser (every key and value,
    keys named in errors); ``display_name`` renames the app (the platform API's
    PATCH). The registry row's UPDATE fires the change notice
    (``apps_notify_change``), so every process drops its cached record at once.
    The change is audited in the app's own log with old and new values.
    """
    from oneauth import audit
    from oneauth.apps.policy import PolicyError, parse, setting_names, unknown_setting

    validate_app_id(app_id)
    set_values = dict(set_values or {})
    for key in [*unset, *set_values]:
        if key not in setting_names():
            raise AppError(unknown_setting(key))
    both = sorted(set(unset) & set(set_values))
    if both:
        raise AppError(f"{both[0]} is both set and unset")
    if display_name is not None:
        display_name = validate_display_name(display_name)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{app_id}")
        current = _fetch(conn, app_id, for_update=True)
        if current is None:
            raise AppMissing(f"no app {app_id!r}")
        if current.status == "deleted":
            raise AppConflict(f"app {app_id!r} is deleted")
        wanted = {k: v for k, v in current.settings.items() if k not in unset}
        wanted.update(set_values)
        try:
            parse(wanted)
        except PolicyError as exc:
            raise AppError(str(exc)) from None
        changes = {
            key: (current.settings.get(key), wanted.get(key))
            for key in sorted(set(current.settings) | set(wanted))
            if current.settings.get(key, _ABSENT) != wanted.get(key, _ABSENT)
        }
        name = current.display_name if display_name is None else display_name
        if name != current.display_name:
            changes["display_name"] = (current.display_name, name)
        if not changes:
            return ConfigureResult(current, {})
        conn.execute(
            "UPDATE oneauth.apps SET settings = %s, display_name = %s, updated_at = now()"
            " WHERE app_id = %s",
            (json.dumps(wanted), name, app_id),
        )
        with ops.app_context(conn, current.names):
            audit.record_sync(
                conn,
                "app.configure",
                "success",
                audit.SYSTEM,
                app_id=app_id,
                actor_type="operator",
                target_type="app",
                target_id=app_id,
                details={"changes": {k: {"old": o, "new": n} for k, (o, n) in changes.items()}},
            )
        updated = _fetch(conn, app_id)
    assert updated is not None
    return ConfigureResult(updated, changes)


_ABSENT = object()


def _not_the_control_plane(app_id: str, verb: str) -> None:
    if is_reserved_app_id(app_id):
        raise AppConflict(
            f"app {app_id!r} is oneauth's control plane; it cannot be {verb} "
            "(configure it like any app: `oneauth apps configure platform ...`)"
        )


def set_status(conn: Conn, app_id: str, status: str) -> AppRecord:
    """Suspend or resume an app; a deleted app stays deleted. Not the control plane."""
    validate_app_id(app_id)
    _not_the_control_plane(app_id, "suspended" if status != "active" else "resumed")
    with conn.transaction():
        current = _fetch(conn, app_id, for_update=True)
        if current is None:
            raise AppMissing(f"no app {app_id!r}")
        if current.status == "deleted":
            raise AppConflict(f"app {app_id!r} is deleted")
        if current.status != status:
            conn.execute(
                "UPDATE oneauth.apps SET status = %s, updated_at = now() WHERE app_id = %s",
                (status, app_id),
            )
        updated = _fetch(conn, app_id)
    assert updated is not None
    return updated


@dataclass(frozen=True)
class Deletion:
    app: AppRecord
    # The signed deletion receipt (K3); None if the app was already deleted
    # (its receipt: `oneauth apps receipt APP`) or no settings were given.
    receipt: str | None
    dek_id: str | None


def delete(conn: Conn, app_id: str, *, settings: Settings | None = None) -> AppRecord:
    """``delete_app`` without the receipt for callers that only need the tombstone."""
    return delete_app(conn, app_id, settings=settings).app


def delete_app(conn: Conn, app_id: str, *, settings: Settings | None = None) -> Deletion:
    """Drop the app's schema (all its data and key material) and role, destroy its
    data-encryption key, keep a tombstone: one transaction (K2). Not the control plane's.

    With ``settings`` (the master key), a signed deletion receipt is issued and
    stored in the same transaction (K3).
    """
    validate_app_id(app_id)
    _not_the_control_plane(app_id, "deleted")
    receipt: str | None = None
    destroyed: str | None = None
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{app_id}")
        current = _fetch(conn, app_id, for_update=True)
        if current is None:
            raise AppMissing(f"no app {app_id!r}")
        names = current.names
        if current.status != "deleted":
            # Ownership checks follow privileges, and the NOINHERIT login role
            # has none until it becomes the app role.
            with ops.app_context(conn, names):
                tables = _row_counts(conn, names.schema)
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(names.schema))
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names.role)))
            # Crypto-shredding: without this row no copy of the schema opens.
            destroyed = dek.destroy(conn, app_id)
            row = conn.execute(
                "UPDATE oneauth.apps SET status = 'deleted', deleted_at = now(),"
                " updated_at = now() WHERE app_id = %s RETURNING deleted_at",
                (app_id,),
            ).fetchone()
            assert row is not None
            if settings is not None:
                box = dek.KeyRing.from_config(settings.master_key)
                receipt = receipts.issue(
                    conn,
                    box,
                    {
                        "app_id": app_id,
                        "deleted_at": row[0].isoformat(),
                        "schema": names.schema,
                        "role": names.role,
                        "tables": tables,
                        "dek_id": destroyed,
                    },
                )
                receipts.store(conn, app_id, receipt)
        deleted = _fetch(conn, app_id)
    assert deleted is not None
    return Deletion(deleted, receipt, destroyed)


def _row_counts(conn: Conn, schema: str) -> list[dict[str, Any]]:
    """Every table of the app's schema with its exact row count (for the receipt)."""
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            (schema,),
        )
    ]
    if not names:
        return []
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM {}.{}").format(
            sql.Literal(name), sql.Identifier(schema), sql.Identifier(name)
        )
        for name in names
    )
    counts = {str(r[0]): int(r[1]) for r in conn.execute(query)}
    return [{"name": name, "rows": counts[name]} for name in names]


def reseal_app(conn: Conn, settings: Settings, app_id: str) -> Any:
    """Move the app's master-key-sealed values to its data key (K4); one transaction.

    Gives an app from before per-app keys its key first. Returns the
    ``oneauth.apps.sealed.ResealReport``.
    """
    from oneauth.apps import sealed

    validate_app_id(app_id)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{app_id}")
        current = _fetch(conn, app_id, for_update=True)
        if current is None or current.status == "deleted":
            raise AppMissing(f"no app {app_id!r}")
        ring = dek.KeyRing.from_config(settings.master_key)
        dek.ensure(conn, ring, app_id)
        with ops.app_context(conn, current.names):
            return sealed.reseal(conn, ring, src_app=app_id, dst_app=app_id)


def get(conn: Conn, app_id: str, *, for_update: bool = False) -> AppRecord | None:
    validate_app_id(app_id)
    return _fetch(conn, app_id, for_update=for_update)


def names_of(conn: Conn, app_id: str) -> AppNames:
    """The schema and role the registry recorded for app_id (with its role namespace, D2)."""
    record = get(conn, app_id)
    if record is None:
        raise AppMissing(f"no app {app_id!r}")
    return record.names


def list_apps(conn: Conn, *, include_deleted: bool = False) -> list[AppRecord]:
    query = f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps"
    if not include_deleted:
        query += " WHERE status <> 'deleted'"
    return [record_from_row(r) for r in conn.execute(query + " ORDER BY app_id")]


def _fetch(conn: Conn, app_id: str, *, for_update: bool = False) -> AppRecord | None:
    query = f"SELECT {REGISTRY_COLUMNS} FROM oneauth.apps WHERE app_id = %s"
    row = conn.execute(query + (" FOR UPDATE" if for_update else ""), (app_id,)).fetchone()
    return None if row is None else record_from_row(row)


def latest_app_version() -> int:
    return templates.latest_version("app")
