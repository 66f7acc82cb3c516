"""Export one app, restore it, or clone it under a new app_id (``oneauth apps export|import``).

Export (X3): one REPEATABLE READ, READ ONLY transaction reads the registry row, the
wrapped data key, the audit checkpoints and the migration ledger, and exports its
snapshot (``pg_export_snapshot()``); ``pg_dump -Fc -n <schema> --snapshot`` dumps the
app's schema from that same snapshot while the transaction stays open, so all members
are one consistent view. pg_dump locks the tables of that one schema only (ACCESS SHARE:
writers carry on), never another app's.

Import (X4) never runs SQL from the archive. The schema is built from this release's own
templates (up to the archive's schema version), and only rows come from the archive:
``pg_restore --data-only`` turns the dump into COPY blocks, and each block is checked
(a table of this schema, named columns) and streamed into the app's schema as the app's
own role, so a crafted archive can at worst bring rows into that one schema. Then the
remaining migrations run, and everything (registry row included) commits at once or
not at all. Foreign keys are dropped for the load and re-added (validated) before
commit, as pg_restore itself orders it.

* restore: same app_id, into an empty slot (no registry row: a fresh installation).
  A deleted app's tombstone is not a slot: app ids are never reused, since tokens and
  links issued for a deleted app must stay dead; clone it under a new id instead.
* ``--replace``: over an existing app; it is suspended (committed, so every process
  stops serving it), its schema dropped and rebuilt in one transaction, then resumed.
  If the restore fails the transaction rolls back and the old data is untouched.
* clone (``--as NEW``): a new app (schema, role, issuer) provisioned in the same
  transaction; what it keeps and drops is ``CLONE_TABLES`` below (X6).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from psycopg import sql

from oneauth import __version__
from oneauth.apps import archive, lifecycle
from oneauth.apps.archive import Archive, ArchiveError
from oneauth.apps.models import AppRecord
from oneauth.db import ops, pgtools, templates
from oneauth.db.naming import validate_app_id, validate_new_app_id
from oneauth.secretbox import SecretBox
from oneauth.settings import Settings

Conn = lifecycle.Conn

# What a clone keeps (X6): the app's configuration and its users with their credentials.
# Everything that is a token, a session, an in-flight flow, a queue or a log of the
# original is dropped: a refresh token, code, link or invitation of A must never work at
# the clone. Every table of the app schema is listed (a test checks it), so a new table
# must be classified here before a clone can be made.
KEEP_ON_CLONE = frozenset(
    {
        "users",
        "clients",
        "client_secrets",
        "consents",
        "mfa_factors",
        "recovery_codes",
        "webauthn_credentials",
        "webauthn_user_handles",
        "permissions",
        "roles",
        "role_permissions",
        "user_roles",
        "organizations",
        "org_roles",
        "org_role_permissions",
        "org_members",
        "org_member_roles",
        "org_domains",
        "identity_providers",
        "user_identities",
        "webhook_endpoints",
    }
)
DROP_ON_CLONE = frozenset(
    {
        "schema_migrations",  # the clone's ledger comes from its own templates
        "signing_keys",  # the clone gets new keys: A's tokens are not valid there
        "audit_log",  # a new app starts its own log and chain
        "audit_chain",
        "sessions",
        "refresh_tokens",
        "browser_sessions",
        "authorization_codes",
        "client_assertion_jtis",
        "throttle",
        "outbox",
        "one_time_tokens",
        "auth_flows",
        "webauthn_challenges",
        "org_invitations",
        "org_invitation_roles",
        "federation_requests",
        "federation_pending_links",
        "federation_codes",
        "admin_idempotency",
        "webhook_deliveries",
    }
)
LEDGER = "schema_migrations"

_COPY = re.compile(rb"^COPY ([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*) \((.*)\) FROM stdin;\n?$")
_SETVAL = re.compile(
    rb"^SELECT pg_catalog\.setval\('([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)', (\d+), "
    rb"(true|false)\);\n?$"
)
_COLUMN = re.compile(r'\s*(?:([a-z_][a-z0-9_]*)|"((?:[^"]|"")+)")\s*(?:,|$)')
# Statements a data-only script holds besides COPY and setval: session settings only.
# Never executed, only recognised: anything else is refused, so an archive cannot
# smuggle DDL past the check even in a line this loop would skip.
_HARMLESS = re.compile(
    rb"^(?:--.*|\s*|SET [a-z_]+ = [^;]*;|SELECT pg_catalog\.set_config\('search_path', '', false\);"
    rb"|\\(?:un)?restrict [A-Za-z0-9]+)\n?$"
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    seconds: float


@dataclass
class ImportResult:
    app: AppRecord
    mode: str  # "restore", "replace" or "clone"
    source_app_id: str
    rows: dict[str, int] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _server_major(conn: Conn) -> int:
    return int(conn.info.server_version) // 10000


# --- export ---------------------------------------------------------------------------


def export(
    conn: Conn,
    settings: Settings,
    app_id: str,
    out: Path,
    *,
    pg_bin: Path | None = None,
) -> ExportResult:
    """Write app_id's archive to ``out`` (refuses to overwrite a file)."""
    started = time.perf_counter()
    validate_app_id(app_id)
    if out.exists():
        raise lifecycle.AppConflict(
            f"{out} exists; choose another --out (backups are not overwritten)"
        )
    pg_dump = pgtools.find_tool("pg_dump", _server_major(conn), pg_bin)
    box = SecretBox.from_config(settings.master_key)
    with tempfile.TemporaryDirectory(prefix="oneauth-export-") as tmp, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        record = lifecycle.get(conn, app_id)
        if record is None:
            raise lifecycle.AppMissing(f"no app {app_id!r}")
        if record.status == "deleted":
            raise lifecycle.AppConflict(f"app {app_id!r} is deleted: nothing left to export")
        registry = _row_json(
            conn, "SELECT row_to_json(a) FROM oneauth.apps a WHERE app_id = %s", app_id
        )
        app_key = None
        if _has_table(conn, "oneauth.app_keys"):  # per-app data keys (shred), wrapped
            app_key = _row_json(
                conn, "SELECT row_to_json(k) FROM oneauth.app_keys k WHERE app_id = %s", app_id
            )
        checkpoints = [
            r[0]
            for r in conn.execute(
                "SELECT row_to_json(c) FROM oneauth.audit_checkpoints c WHERE app_id = %s"
                " ORDER BY seq",
                (app_id,),
            )
        ]
        names = record.names
        with ops.app_context(conn, names):
            ledger = [
                {"version": int(r[0]), "name": str(r[1]), "checksum": str(r[2])}
                for r in conn.execute(
                    "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
                )
            ]
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        dump = Path(tmp) / archive.DUMP_MEMBER
        dsn, env = pgtools.split_dsn(settings.operator_url)
        proc = subprocess.run(  # noqa: S603 (our own argument list, no shell)
            [
                str(pg_dump),
                "--format=custom",
                f"--schema={names.schema}",
                f"--snapshot={snapshot[0]}",
                # The NOINHERIT operator reads the schema as the app role, whose
                # rights end at its own schema.
                f"--role={names.role}",
                "--lock-wait-timeout=30000",
                f"--file={dump}",
                f"--dbname={dsn}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise pgtools.PgToolError(f"pg_dump failed: {proc.stderr.strip()}")
        manifest = archive.write(
            out,
            {
                "app_id": app_id,
                "schema": names.schema,
                "schema_version": len(ledger),
                "migrations": ledger,
                "status": record.status,
                "created_at": datetime.now(UTC).isoformat(),
                "oneauth_version": __version__,
                "server_version": int(conn.info.server_version),
                "pg_dump_major": pgtools.tool_major(pg_dump),
            },
            {
                "registry.json": registry,
                "app_key.json": app_key,
                "audit_checkpoints.json": checkpoints,
            },
            dump,
            box,
        )
    return ExportResult(out, manifest, time.perf_counter() - started)


def _row_json(conn: Conn, query: str, app_id: str) -> Any:
    row = conn.execute(query, (app_id,)).fetchone()
    return None if row is None else row[0]


def _has_table(conn: Conn, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# --- import ---------------------------------------------------------------------------


def check_versions(arc: Archive) -> None:
    """Refuse an archive from a newer release or with a ledger this release does not share."""
    latest = templates.latest_version("app")
    version = arc.schema_version
    if version > latest:
        raise ArchiveError(
            f"the archive's schema version is {version}, newer than this release's ({latest}): "
            "import it with the release that made it, or a newer one"
        )
    ours = {t.version: t for t in templates.load("app")}
    ledger = arc.manifest.get("migrations") or []
    if len(ledger) != version or sorted(int(m["version"]) for m in ledger) != list(
        range(1, version + 1)
    ):
        raise ArchiveError("the archive's migration ledger does not match its schema version")
    for m in ledger:
        t = ours[int(m["version"])]
        if m["name"] != t.name or m["checksum"] != t.checksum:
            raise ArchiveError(
                f"the archive's migration {m['version']} ({m['name']}) differs from this "
                f"release's {t.filename}: it was made by an incompatible build"
            )


def import_archive(
    conn: Conn,
    settings: Settings,
    path: Path,
    *,
    as_app: str | None = None,
    replace: bool = False,
    display_name: str | None = None,
    pg_bin: Path | None = None,
) -> ImportResult:
    """Restore (same id), replace (``replace=True``) or clone (``as_app``) from an archive."""
    started = time.perf_counter()
    box = SecretBox.from_config(settings.master_key)
    with tempfile.TemporaryDirectory(prefix="oneauth-import-") as tmp:
        arc = archive.read(path, Path(tmp), box)
        check_versions(arc)
        source = arc.app_id
        target = as_app or source
        validate_new_app_id(target)
        need = max(_server_major(conn), int(arc.manifest.get("pg_dump_major") or 0))
        pg_restore = pgtools.find_tool("pg_restore", need, pg_bin)
        existing = lifecycle.get(conn, target)
        if existing is not None and existing.status == "deleted":
            raise lifecycle.AppConflict(
                f"app {target!r} was deleted; an app_id is never reused (its old tokens and "
                "links must stay dead): import under a new id with --as NEW_ID"
            )
        if target != source:
            if existing is not None:
                raise lifecycle.AppConflict(
                    f"app {target!r} exists; a clone needs a new app_id"
                    + (
                        " (--replace restores an app over itself, not over another)"
                        if replace
                        else ""
                    )
                )
            result = _clone(conn, settings, arc, target, display_name, pg_restore)
        elif existing is None:
            result = _restore_fresh(conn, settings, arc, pg_restore)
        elif not replace:
            raise lifecycle.AppConflict(
                f"app {target!r} exists ({existing.status}); pass --replace to restore over "
                "it (it is suspended during the restore), or --as NEW_ID to clone"
            )
        else:
            result = _replace(conn, settings, arc, existing, pg_restore)
    result.seconds = time.perf_counter() - started
    return result


def _restore_fresh(conn: Conn, settings: Settings, arc: Archive, pg_restore: Path) -> ImportResult:
    reg = arc.registry
    with conn.transaction():
        made = lifecycle.provision(
            conn,
            settings,
            arc.app_id,
            str(reg["display_name"]),
            app_settings=dict(reg.get("settings") or {}),
            hooks=(),
            schema_version=arc.schema_version,
        )
        if not made.created:  # raced with a provision of the same id
            raise lifecycle.AppConflict(f"app {arc.app_id!r} appeared during the import")
        record = made.app
        with ops.app_context(conn, record.names):
            rows = load_rows(conn, pg_restore, arc, record.names.schema, skip=frozenset())
            _audit(conn, record, "restore", arc, rows)
        _restore_control_rows(conn, settings, arc, record.app_id, checkpoints=True)
        record = lifecycle.get(conn, record.app_id) or record  # with the archive's data key
        applied = _finish(conn, settings, record)
        conn.execute(
            "UPDATE oneauth.apps SET status = %s, created_at = %s::timestamptz, updated_at = now()"
            " WHERE app_id = %s",
            (_live_status(reg), reg["created_at"], record.app_id),
        )
        final = lifecycle.get(conn, record.app_id)
    assert final is not None
    return ImportResult(final, "restore", arc.app_id, rows, applied)


def _replace(
    conn: Conn, settings: Settings, arc: Archive, existing: AppRecord, pg_restore: Path
) -> ImportResult:
    prior = existing.status
    if prior == "active":
        # Committed first: every process drops the app on the registry's notice and
        # answers "suspended" while its schema is rebuilt.
        lifecycle.set_status(conn, existing.app_id, "suspended")
    try:
        with conn.transaction():
            ops.advisory_lock(conn, f"app:{existing.app_id}")
            record = lifecycle.get(conn, existing.app_id, for_update=True)
            if record is None or record.status == "deleted":
                raise lifecycle.AppConflict(f"app {existing.app_id!r} went away during the import")
            names = record.names
            schema, role = sql.Identifier(names.schema), sql.Identifier(names.role)
            with ops.app_context(conn, names):
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, role))
            with ops.app_context(conn, names):
                conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
                ops.apply_templates(conn, "app", names.schema, upto=arc.schema_version)
                rows = load_rows(conn, pg_restore, arc, names.schema, skip=frozenset())
                _audit(conn, record, "replace", arc, rows)
            _restore_control_rows(conn, settings, arc, record.app_id, checkpoints=False)
            record = lifecycle.get(conn, record.app_id) or record
            applied = _finish(conn, settings, record)
            reg = arc.registry
            conn.execute(
                "UPDATE oneauth.apps SET display_name = %s, settings = %s, updated_at = now()"
                " WHERE app_id = %s",
                (reg["display_name"], json.dumps(reg.get("settings") or {}), record.app_id),
            )
            _notify_caches(conn, record.app_id)
    finally:
        if prior == "active":
            lifecycle.set_status(conn, existing.app_id, "active")
    final = lifecycle.get(conn, existing.app_id)
    assert final is not None
    return ImportResult(final, "replace", arc.app_id, rows, applied)


def _clone(
    conn: Conn,
    settings: Settings,
    arc: Archive,
    target: str,
    display_name: str | None,
    pg_restore: Path,
) -> ImportResult:
    reg = arc.registry
    with conn.transaction():
        made = lifecycle.provision(
            conn,
            settings,
            target,
            display_name or str(reg["display_name"]),
            app_settings=dict(reg.get("settings") or {}),
            hooks=(),
            schema_version=arc.schema_version,
        )
        if not made.created:
            raise lifecycle.AppConflict(f"app {target!r} appeared during the import")
        record = made.app
        names = record.names
        with ops.app_context(conn, names):
            rows = load_rows(conn, pg_restore, arc, names.schema, skip=DROP_ON_CLONE)
            migrated = _migrate(conn, record)
            # The clone must not call A's receivers behind their back: endpoints are
            # kept for reference but disabled until an operator enables them.
            conn.execute("UPDATE webhook_endpoints SET enabled = false, updated_at = now()")
            _reseal(conn, settings, arc, record)
            _audit(conn, record, "clone", arc, rows)
        _set_version(conn, target, migrated.version)
        # No signing key was copied: the seeding hook gives the clone new ones.
        _finish(conn, settings, record)
        applied = migrated.applied
        final = lifecycle.get(conn, target)
    assert final is not None
    return ImportResult(final, "clone", arc.app_id, rows, applied)


def _reseal(conn: Conn, settings: Settings, arc: Archive, dst: AppRecord) -> None:
    """Every kept sealed value is bound to the source app (its context and data key):
    reopen it and seal it for the clone (oneauth.apps.sealed, the one list)."""
    from oneauth.apps import dek, sealed

    ring = dek.KeyRing.with_apps(settings.master_key, dst)
    ring.learn(arc.app_id, _archived_dek(ring, arc))
    sealed.reseal(conn, ring, src_app=arc.app_id, dst_app=dst.app_id)


def _archived_dek(ring: Any, arc: Archive) -> Any:
    """The archive's wrapped data key, checked to open with this installation's master key."""
    from oneauth.apps import dek
    from oneauth.secretbox import SecretBoxError

    if arc.app_key is None:
        return None  # an export from before per-app keys: values sealed by the master key
    found = dek.AppDek(str(arc.app_key["dek_id"]), str(arc.app_key["wrapped_dek"]))
    try:
        ring.unwrap(arc.app_id, found)
    except SecretBoxError:
        raise ArchiveError(
            "the archive's data key does not open with this installation's master key "
            "(configure the master key of the installation that made the export)"
        ) from None
    return found


def _audit(conn: Conn, record: AppRecord, mode: str, arc: Archive, rows: dict[str, int]) -> None:
    """``app.import`` in the app's own log: what came from which archive (in the app's context)."""
    from oneauth import audit

    audit.record_sync(
        conn,
        "app.import",
        "success",
        audit.SYSTEM,
        app_id=record.app_id,
        actor_type="operator",
        target_type="app",
        target_id=record.app_id,
        details={
            "mode": mode,
            "source_app_id": arc.app_id,
            "exported_at": arc.manifest.get("created_at"),
            "schema_version": arc.schema_version,
            "rows": sum(rows.values()),
        },
    )


def _live_status(reg: dict[str, Any]) -> str:
    status = str(reg.get("status") or "active")
    return status if status in ("active", "suspended") else "suspended"


def _migrate(conn: Conn, record: AppRecord) -> ops.MigrationResult:
    """Migrate the loaded schema (in the app's context) to this release."""
    return ops.apply_templates(conn, "app", record.names.schema)


def _set_version(conn: Conn, app_id: str, version: int) -> None:
    conn.execute(
        "UPDATE oneauth.apps SET schema_version = %s, updated_at = now() WHERE app_id = %s",
        (version, app_id),
    )


def _finish(conn: Conn, settings: Settings, record: AppRecord) -> list[str]:
    """Migrate the loaded schema to this release and seed what every app needs."""
    with ops.app_context(conn, record.names):
        result = _migrate(conn, record)
        for hook in lifecycle.default_hooks():
            hook(conn, record, settings)
    _set_version(conn, record.app_id, result.version)
    return result.applied


def _restore_control_rows(
    conn: Conn, settings: Settings, arc: Archive, app_id: str, *, checkpoints: bool
) -> None:
    """The wrapped data key (replacing the one provisioning made) and, into an empty
    slot, the audit chain's signed checkpoints."""
    from oneauth.apps import dek

    if arc.app_key is not None:
        ring = dek.KeyRing.from_config(settings.master_key)
        # Rewrapped under the current master key; replaces the key provisioning made.
        dek.install(conn, ring, app_id, _archived_dek(ring, arc), replace=True)
    if checkpoints:
        for cp in arc.audit_checkpoints:
            conn.execute(
                "INSERT INTO oneauth.audit_checkpoints SELECT * FROM"
                " json_populate_record(NULL::oneauth.audit_checkpoints, %s::json)",
                (json.dumps({**cp, "app_id": app_id}),),
            )


def _notify_caches(conn: Conn, app_id: str) -> None:
    """Keys and clients changed under every process's caches: drop them at commit."""
    from oneauth.oauth.clients import CHANNEL as CLIENTS
    from oneauth.tokens.keystore import CHANNEL as KEYS

    for channel in (KEYS, CLIENTS):
        conn.execute("SELECT pg_notify(%s, %s)", (channel, app_id))


# --- loading rows ---------------------------------------------------------------------


def load_rows(
    conn: Conn, pg_restore: Path, arc: Archive, schema: str, *, skip: frozenset[str]
) -> dict[str, int]:
    """Stream the archive's rows into ``schema`` (current role and search_path: the app's).

    The caller holds the transaction. Returns rows per table loaded."""
    src_schema = str(arc.manifest["schema"])
    tables: dict[str, set[str]] = {}
    for r in conn.execute(
        "SELECT c.relname, a.attname FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p')",
        (schema,),
    ):
        tables.setdefault(str(r[0]), set()).add(str(r[1]))
    sequences = {
        str(r[0]): (None if r[1] is None else str(r[1]))
        for r in conn.execute(
            "SELECT s.relname, t.relname FROM pg_class s"
            " LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
            "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
            " LEFT JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE s.relnamespace = %s::regnamespace AND s.relkind = 'S'",
            (schema,),
        )
    }
    fks = [
        (str(r[0]), str(r[1]), str(r[2]))
        for r in conn.execute(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid"
            " WHERE c.contype = 'f' AND c.connamespace = %s::regnamespace ORDER BY 1, 2",
            (schema,),
        )
    ]
    for table, name, _ in fks:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(schema, table), sql.Identifier(name)
            )
        )
    rows: dict[str, int] = {}
    ledger: list[bytes] = []
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603 (our own argument list, no shell)
            [str(pg_restore), "--data-only", "--file=-", str(arc.dump)],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert proc.stdout is not None
        try:
            _load_stream(
                conn, proc.stdout, src_schema, schema, tables, sequences, skip, rows, ledger
            )
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            errors.seek(0)
            detail = errors.read().decode(errors="replace").strip()
            raise ArchiveError(f"pg_restore could not read the archive's dump: {detail}")
    _check_ledger(arc, ledger)
    for table, name, definition in fks:
        # The definition comes from our own catalog (this release's templates).
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(schema, table), sql.Identifier(name), sql.SQL(definition)
            )
        )
    return rows


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def _load_stream(
    conn: Conn,
    stream: IO[bytes],
    src_schema: str,
    schema: str,
    tables: dict[str, set[str]],
    sequences: dict[str, str | None],
    skip: frozenset[str],
    rows: dict[str, int],
    ledger: list[bytes],
) -> None:
    lines = _lines(stream)
    for line in lines:
        copy = _COPY.match(line)
        if copy is not None:
            src, table = copy.group(1).decode(), copy.group(2).decode()
            if src != src_schema:
                raise ArchiveError(
                    f"the dump has rows for schema {src!r}, not the app's {src_schema!r}"
                )
            if table not in tables:
                raise ArchiveError(
                    f"the dump has rows for table {table!r}, which this release's schema lacks"
                )
            columns = _columns(copy.group(3).decode())
            unknown = sorted(set(columns) - tables[table])
            if unknown:
                raise ArchiveError(
                    f"the dump's rows of {table} have columns this release's schema lacks: "
                    + ", ".join(unknown)
                )
            if table == LEDGER:
                ledger.extend(_block(lines))
            elif table in skip:
                for _ in _block(lines):
                    pass
            else:
                target = sql.Identifier(schema, table)
                seeded = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(target))
                if (seeded.fetchone() or (False,))[0]:
                    # Rows a template seeds (default org roles...): the archive has
                    # the app's own version of them.
                    conn.execute(sql.SQL("DELETE FROM {}").format(target))
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
                )
                n = 0
                with conn.cursor() as cur, cur.copy(statement) as cp:
                    for data in _block(lines):
                        cp.write(data)
                        n += 1
                rows[table] = n
            continue
        setval = _SETVAL.match(line)
        if setval is not None:
            src, seq = setval.group(1).decode(), setval.group(2).decode()
            if src != src_schema or seq not in sequences:
                raise ArchiveError(f"the dump sets an unknown sequence {src}.{seq}")
            if sequences[seq] in skip:
                continue
            conn.execute(
                "SELECT setval(%s::regclass, %s, %s)",
                (f"{schema}.{seq}", int(setval.group(3)), setval.group(4) == b"true"),
            )
            continue
        if _HARMLESS.match(line) is None:
            raise ArchiveError(f"the dump holds a statement an app export never has: {line[:80]!r}")


def _block(lines: Iterator[bytes]) -> Iterator[bytes]:
    """The data lines of one COPY block, up to its ``\\.`` terminator."""
    for data in lines:
        if data in (b"\\.\n", b"\\."):
            return
        yield data
    raise ArchiveError("the dump ends inside a COPY block (truncated)")


def _columns(text: str) -> list[str]:
    columns: list[str] = []
    pos = 0
    while pos < len(text):
        found = _COLUMN.match(text, pos)
        if found is None or found.end() == pos:
            raise ArchiveError(f"cannot read the dump's column list {text[:80]!r}")
        columns.append(found.group(1) or found.group(2).replace('""', '"'))
        pos = found.end()
    return columns


def _check_ledger(arc: Archive, ledger: list[bytes]) -> None:
    """The dump's own ledger must be the manifest's (the manifest was checked against
    this release's templates)."""
    seen = sorted(
        (int(f[0]), f[1].decode(), f[2].decode())
        for f in (line.rstrip(b"\n").split(b"\t") for line in ledger)
    )
    wanted = sorted(
        (int(m["version"]), str(m["name"]), str(m["checksum"])) for m in arc.manifest["migrations"]
    )
    if seen != wanted:
        raise ArchiveError(
            "the dump's migration ledger differs from the manifest's: the archive is inconsistent"
        )
