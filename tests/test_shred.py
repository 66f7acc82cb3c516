"""Crypto-shredding (requirements K1-K4): per-app data keys, deletion receipts, rotation.

Real Postgres and real ``pg_dump``: a dump of an app's schema taken before
``apps delete`` holds only values sealed with the app's data key, and that key
is gone with the delete, so nothing left (not even the master key) opens them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest

from conftest import ScratchDatabase, new_app_id
from oneauth.apps import dek, lifecycle, receipts, sealed
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.cli.main import main
from oneauth.db import ops
from oneauth.localpg import find_bindir
from oneauth.secretbox import SecretBox, SecretBoxError, generate_master_key, sealed_key_id
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.tokens.keystore import key_context
from oneauth.webhooks.endpoints import seal_context as webhook_context

OLD_KEY = generate_master_key()
NEW_KEY = generate_master_key()


@pytest.fixture(scope="module")
def shred_db(make_database: Callable[[str], ScratchDatabase]) -> ScratchDatabase:
    """A database of its own: rotation rewraps every app's key in it."""
    db = make_database("shred")
    migrate_all(db.dsn)
    return db


@pytest.fixture(scope="module")
def shred_settings(shred_db: ScratchDatabase) -> Settings:
    return shred_db.settings(master_key=f"m1:{OLD_KEY}")


@pytest.fixture
def conn(shred_settings: Settings) -> Iterator[lifecycle.Conn]:
    with ops.connect(shred_settings.operator_url) as c:
        yield c


def dek_of(app: AppRecord) -> dek.AppDek:
    assert app.dek is not None
    return app.dek


def provision(settings: Settings) -> AppRecord:
    with ops.connect(settings.operator_url) as c:
        return lifecycle.provision(c, settings, new_app_id("s"), "Shred").app


def _env(settings: Settings) -> dict[str, str]:
    return {
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_MASTER_KEY": settings.master_key,
    }


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``oneauth ARGS`` as an operator runs it (a subprocess)."""
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **_env(settings)},
        check=False,
        timeout=60,
    )


def cli(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The same ``main()`` in this process (a thread with its own event loop): many
    calls stay fast on a loaded machine (tests/orgs/test_cli.py does the same)."""

    def call() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    with (
        mock.patch.dict(os.environ, _env(settings)),
        mock.patch("oneauth.logs.configure"),
        mock.patch("sys.stdin", io.StringIO(stdin or "")),
        ThreadPoolExecutor(1) as pool,
    ):
        return pool.submit(call).result(timeout=120)


def pg_dump(settings: Settings, app: AppRecord) -> str:
    """A plain-SQL dump of the app's schema, as a backup job would take it (as the app role)."""
    result = subprocess.run(
        [
            str(find_bindir() / "pg_dump"),
            "--dbname",
            settings.operator_url,
            "--role",
            app.names.role,
            "--schema",
            app.names.schema,
            "--no-owner",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # pg_dump 15.14+ writes a random \restrict token per run: not the content.
    return "\n".join(
        line
        for line in result.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )


SEALED_RE = re.compile(r"v1\.[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+")


def signing_keys_in_dump(dump: str) -> list[tuple[str, str]]:
    """(kid, private_sealed) from the dump's COPY block of signing_keys."""
    block = dump.split("COPY ", 1)[1] if "COPY " in dump else ""
    rows: list[tuple[str, str]] = []
    for section in dump.split("\nCOPY ")[1:]:
        header, _, body = section.partition("\n")
        if not header.split(" ", 1)[0].endswith("signing_keys"):
            continue
        columns = header[header.index("(") + 1 : header.index(")")].split(", ")
        for line in body.split("\n\\.", 1)[0].splitlines():
            values = dict(zip(columns, line.split("\t"), strict=True))
            rows.append((values["kid"], values["private_sealed"]))
    assert block, "the dump has no data"
    return rows


def test_each_app_gets_its_own_wrapped_data_key_and_seals_with_it(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    a, b = provision(shred_settings), provision(shred_settings)
    assert a.dek is not None
    assert b.dek is not None
    assert dek_of(a).dek_id != dek_of(b).dek_id
    row = conn.execute(
        "SELECT dek_id, wrapped_dek, master_key_id FROM oneauth.app_keys WHERE app_id = %s",
        (a.app_id,),
    ).fetchone()
    assert row is not None
    assert row[0] == dek_of(a).dek_id
    assert row[2] == "m1"
    assert sealed_key_id(row[1]) == "m1"  # wrapped by the master key
    with conn.transaction(), ops.app_context(conn, a.names):
        kids = conn.execute("SELECT kid, private_sealed FROM signing_keys").fetchall()
    assert len(kids) == 4
    for kid, value in kids:
        assert sealed_key_id(value) == dek_of(a).dek_id  # not the master key
        ring = dek.KeyRing.with_apps(shred_settings.master_key, a)
        assert json.loads(ring.open(value, context=key_context(a.app_id, kid)))["kid"] == kid


def test_a_dump_taken_before_delete_cannot_be_decrypted_after_delete(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    app = provision(shred_settings)
    ring = dek.KeyRing.with_apps(shred_settings.master_key, app)
    endpoint_id = "whe_" + "a" * 20
    with conn.transaction(), ops.app_context(conn, app.names):
        conn.execute(
            "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types)"
            " VALUES (%s, 'https://hooks.example/x', %s, ARRAY['user.created'])",
            (endpoint_id, ring.seal(b"whsec_x", context=webhook_context(app.app_id, endpoint_id))),
        )
    dump = pg_dump(shred_settings, app)
    keys = signing_keys_in_dump(dump)
    assert len(keys) == 4
    # Before the delete the backup restores: the key opens.
    for kid, value in keys:
        ring.open(value, context=key_context(app.app_id, kid))

    result = run(shred_settings, "apps", "delete", app.app_id, "--yes")
    assert result.returncode == 0, result.stderr
    assert "data key dek-" in result.stderr

    # Nothing left opens what the dump holds: not a ring that reads the
    # control schema again, not the master key, not even the old in-memory key
    # learned from a record re-read now.
    assert dek.fetch(conn, app.app_id) is None
    gone = lifecycle.get(conn, app.app_id)
    assert gone is not None
    assert gone.status == "deleted"
    assert gone.dek is None
    fresh = dek.KeyRing.with_apps(shred_settings.master_key, gone)
    master = SecretBox.from_config(shred_settings.master_key)
    values = [(f"signing_keys/{kid}", key_context(app.app_id, kid), v) for kid, v in keys]
    sealed_in_dump = SEALED_RE.findall(dump)
    assert len(sealed_in_dump) == 5  # four signing keys and the webhook secret
    assert all(sealed_key_id(v) == dek_of(app).dek_id for v in sealed_in_dump)
    for _, context, value in values:
        with pytest.raises(SecretBoxError):
            fresh.open(value, context=context)
        with pytest.raises(SecretBoxError):
            master.open(value, context=context)
    # The destroyed key id appears nowhere in the control schema any more.
    with conn.transaction():
        control = conn.execute(
            "SELECT count(*) FROM oneauth.app_keys WHERE dek_id = %s",
            (dek_of(app).dek_id,),
        ).fetchone()
    assert control == (0,)


def test_delete_destroys_the_key_in_the_same_transaction_as_the_drop(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    """A delete that fails after the key's row is gone leaves schema and key in place."""
    app = provision(shred_settings)
    with conn.transaction():
        conn.execute(
            "CREATE FUNCTION oneauth.t_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS"
            " $$BEGIN RAISE EXCEPTION 'refused by the test'; END$$"
        )
        conn.execute(
            "CREATE TRIGGER t_refuse_delete AFTER UPDATE ON oneauth.apps FOR EACH ROW"
            f" WHEN (NEW.app_id = '{app.app_id}' AND NEW.status = 'deleted')"
            " EXECUTE FUNCTION oneauth.t_refuse_delete()"
        )
    try:
        with pytest.raises(psycopg.Error, match="refused by the test"):
            lifecycle.delete_app(conn, app.app_id, settings=shred_settings)
    finally:
        with conn.transaction():
            conn.execute("DROP TRIGGER t_refuse_delete ON oneauth.apps")
            conn.execute("DROP FUNCTION oneauth.t_refuse_delete()")
    assert dek.fetch(conn, app.app_id) == app.dek
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = %s)", (app.names.schema,)
    ).fetchone()
    assert row == (True,)


def _tamper(receipt: str) -> str:
    header, payload, signature = receipt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tables"] = [{"name": "users", "rows": 0}]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_receipts_verify_and_tampered_or_false_ones_do_not(
    shred_settings: Settings, conn: lifecycle.Conn, tmp_path: Path
) -> None:
    app = provision(shred_settings)
    with conn.transaction(), ops.app_context(conn, app.names):
        conn.execute(
            "INSERT INTO users (email, email_normalized) VALUES ('a@example.com', 'a@example.com')"
        )
    key = cli(shred_settings, "apps", "receipt-key")
    assert key.returncode == 0, key.stderr
    (tmp_path / "receipt-key.json").write_text(key.stdout)
    deleted = cli(shred_settings, "apps", "delete", app.app_id, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    receipt = deleted.stdout.strip()
    claims = receipts.verify(receipt, receipts.public_keys(conn))
    assert claims["app_id"] == app.app_id
    assert claims["dek_id"] == dek_of(app).dek_id
    assert claims["schema"] == app.names.schema
    assert claims["role"] == app.names.role
    tables = {t["name"]: t["rows"] for t in claims["tables"]}
    assert tables["users"] == 1
    assert tables["signing_keys"] == 4

    ok = cli(shred_settings, "apps", "verify-deleted", receipt, "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["checks"] == {
        "signature": True,
        "registry_says_deleted": True,
        "schema_gone": True,
        "role_gone": True,
        "data_key_destroyed": True,
    }
    # Offline key (kept apart from the database), receipt from a file and stdin.
    (tmp_path / "r.jws").write_text(receipt)
    by_file = cli(
        shred_settings,
        "apps",
        "verify-deleted",
        str(tmp_path / "r.jws"),
        "--key",
        str(tmp_path / "receipt-key.json"),
    )
    assert by_file.returncode == 0, by_file.stdout
    assert "verified" in by_file.stdout
    assert cli(shred_settings, "apps", "verify-deleted", "-", stdin=receipt).returncode == 0
    assert cli(shred_settings, "apps", "receipt", app.app_id).stdout.strip() == receipt

    tampered = cli(shred_settings, "apps", "verify-deleted", _tamper(receipt))
    assert tampered.returncode == 1
    assert "INVALID receipt: the signature does not verify" in tampered.stdout
    with pytest.raises(receipts.ReceiptError):
        receipts.verify(_tamper(receipt), receipts.public_keys(conn))
    # Signed by another key (same kid): refused.
    from jwcrypto import jwk

    other = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    kid = json.loads(base64.urlsafe_b64decode(receipt.split(".")[0] + "=="))["kid"]
    stranger = [{**json.loads(other.export_public()), "kid": kid}]
    with pytest.raises(receipts.ReceiptError, match="does not verify"):
        receipts.verify(receipt, stranger)
    assert cli(shred_settings, "apps", "verify-deleted", "not.a.jws").returncode == 1

    # A genuine receipt whose claims are no longer true (the schema is back) fails.
    with conn.transaction():
        conn.execute(f'CREATE SCHEMA "{app.names.schema}"')
    try:
        back = cli(shred_settings, "apps", "verify-deleted", receipt)
        assert back.returncode == 1
        assert "FAIL schema_gone" in back.stdout
    finally:
        with conn.transaction():
            conn.execute(f'DROP SCHEMA "{app.names.schema}"')


def test_two_deletes_at_once_destroy_once_and_issue_one_receipt(
    shred_settings: Settings,
) -> None:
    app = provision(shred_settings)
    results: list[lifecycle.Deletion] = []
    barrier = threading.Barrier(2)

    def delete() -> None:
        with ops.connect(shred_settings.operator_url) as c:
            barrier.wait()
            results.append(lifecycle.delete_app(c, app.app_id, settings=shred_settings))

    threads = [threading.Thread(target=delete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2
    assert sorted(r.receipt is not None for r in results) == [False, True]
    assert [r.dek_id for r in results if r.receipt] == [dek_of(app).dek_id]


def test_a_value_copied_into_another_apps_schema_does_not_open(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    """Cross-app: A's sealed signing key copied into B's table, under B's context."""
    a, b = provision(shred_settings), provision(shred_settings)
    ring = dek.KeyRing.with_apps(shred_settings.master_key, a, b)
    with conn.transaction(), ops.app_context(conn, a.names):
        kid, value = conn.execute(
            "SELECT kid, private_sealed FROM signing_keys WHERE alg = 'ES256' AND state = 'active'"
        ).fetchone() or ("", "")
    with conn.transaction(), ops.app_context(conn, b.names):
        original = conn.execute(
            "SELECT private_sealed FROM signing_keys WHERE alg = 'ES256' AND state = 'active'"
        ).fetchone()
        conn.execute(
            "UPDATE signing_keys SET private_sealed = %s WHERE alg = 'ES256' AND state = 'active'",
            (value,),
        )
        b_kid = conn.execute(
            "SELECT kid, private_sealed FROM signing_keys WHERE alg = 'ES256' AND state = 'active'"
        ).fetchone()
    assert b_kid is not None
    assert b_kid[1] == value
    for context in (key_context(b.app_id, b_kid[0]), key_context(b.app_id, kid)):
        with pytest.raises(SecretBoxError):
            ring.open(value, context=context)
        with pytest.raises(SecretBoxError):
            ring.for_app(b.app_id).open(value, context=context)
    # Even a legacy (master-key) value of A does not open as B's: the context binds the app.
    legacy = SecretBox.from_config(shred_settings.master_key).seal(
        b"k", context=key_context(a.app_id, kid)
    )
    with pytest.raises(SecretBoxError):
        ring.open(legacy, context=key_context(b.app_id, kid))
    # `apps reseal` refuses the foreign value, names the row, and changes nothing.
    refused = cli(shred_settings, "apps", "reseal", b.app_id)
    assert refused.returncode == 1
    assert f"signing_keys.private_sealed (kid={b_kid[0]}) does not open" in refused.stderr
    with conn.transaction(), ops.app_context(conn, b.names):
        conn.execute(
            "UPDATE signing_keys SET private_sealed = %s WHERE alg = 'ES256' AND state = 'active'",
            original,
        )


def test_clone_reseal_moves_kept_values_to_the_clone_and_drops_the_rest(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    """The interface lifecycle's clone uses: rows restored into B, still sealed for A."""
    a, b = provision(shred_settings), provision(shred_settings)
    ring = dek.KeyRing.with_apps(shred_settings.master_key, a, b)
    endpoint_id = "whe_" + "c" * 20
    secret = ring.seal(b"whsec_keep", context=webhook_context(a.app_id, endpoint_id))
    with conn.transaction(), ops.app_context(conn, b.names):
        conn.execute(
            "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types)"
            " VALUES (%s, 'https://hooks.example/x', %s, ARRAY['user.created'])",
            (endpoint_id, secret),
        )
        with pytest.raises(SecretBoxError):  # as restored: A's, not B's
            ring.open(secret, context=webhook_context(b.app_id, endpoint_id))
        report = sealed.reseal(conn, ring, src_app=a.app_id, dst_app=b.app_id)
        moved = conn.execute(
            "SELECT secret_sealed FROM webhook_endpoints WHERE id = %s", (endpoint_id,)
        ).fetchone()
        left = conn.execute("SELECT count(*) FROM signing_keys").fetchone()
    assert report.resealed["webhook_endpoints.secret_sealed"] == 1
    assert report.dropped["signing_keys"] == 4
    assert left == (0,)
    assert moved is not None
    assert sealed_key_id(moved[0]) == dek_of(b).dek_id
    assert ring.open(moved[0], context=webhook_context(b.app_id, endpoint_id)) == b"whsec_keep"
    with pytest.raises(SecretBoxError):
        ring.open(moved[0], context=webhook_context(a.app_id, endpoint_id))


def test_legacy_apps_get_a_key_from_migrate_and_reseal_moves_their_values(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    """An app from before per-app keys: master-key values still open, then move (K4)."""
    app = provision(shred_settings)
    master = SecretBox.from_config(shred_settings.master_key)
    ring = dek.KeyRing.with_apps(shred_settings.master_key, app)
    with conn.transaction():
        with ops.app_context(conn, app.names):
            rows = conn.execute("SELECT kid, private_sealed FROM signing_keys").fetchall()
            for kid, value in rows:  # back to the master-key format
                plain = ring.open(value, context=key_context(app.app_id, kid))
                conn.execute(
                    "UPDATE signing_keys SET private_sealed = %s WHERE kid = %s",
                    (master.seal(plain, context=key_context(app.app_id, kid)), kid),
                )
        conn.execute("DELETE FROM oneauth.app_keys WHERE app_id = %s", (app.app_id,))
    legacy = lifecycle.get(conn, app.app_id)
    assert legacy is not None
    assert legacy.dek is None

    summary = migrate_all(shred_settings.operator_url, settings=shred_settings)
    assert not summary.failed
    migrated = lifecycle.get(conn, app.app_id)
    assert migrated is not None
    assert migrated.dek is not None
    ring = dek.KeyRing.with_apps(shred_settings.master_key, migrated)
    with conn.transaction(), ops.app_context(conn, app.names):
        for kid, value in conn.execute("SELECT kid, private_sealed FROM signing_keys"):
            assert sealed_key_id(value) == "m1"  # untouched by migrate ...
            ring.open(value, context=key_context(app.app_id, kid))  # ... and still opens

    first = cli(shred_settings, "apps", "reseal", app.app_id, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["resealed"]["signing_keys.private_sealed"] == 4
    with conn.transaction(), ops.app_context(conn, app.names):
        for kid, value in conn.execute("SELECT kid, private_sealed FROM signing_keys"):
            assert sealed_key_id(value) == dek_of(migrated).dek_id
            ring.open(value, context=key_context(app.app_id, kid))
    again = cli(shred_settings, "apps", "reseal", "--all", "--json")
    assert again.returncode == 0, again.stderr
    mine = [r for r in json.loads(again.stdout) if r["dst_app"] == app.app_id]
    assert mine[0]["resealed"]["signing_keys.private_sealed"] == 0
    assert mine[0]["current"]["signing_keys.private_sealed"] == 4


def test_master_key_rotation_rewraps_app_keys_without_touching_app_schemas(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    apps = [provision(shred_settings) for _ in range(2)]
    # The receipt key exists before the rotation, so it is rewrapped too.
    assert cli(shred_settings, "apps", "receipt-key").returncode == 0
    before = {a.app_id: pg_dump(shred_settings, a) for a in apps}
    rotated = replace(shred_settings, master_key=f"m2:{NEW_KEY},m1:{OLD_KEY}")
    result = cli(rotated, "keys", "rewrap", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rewrapped"] >= 2
    assert report["master_key_id"] == "m2"
    rows = conn.execute(
        "SELECT master_key_id, count(*) FROM oneauth.app_keys GROUP BY 1"
    ).fetchall()
    assert rows == [("m2", rows[0][1])]
    # No app schema changed: byte-identical dumps.
    for app in apps:
        assert pg_dump(shred_settings, app) == before[app.app_id]
    # The old master key can go: every app's values open with the new one alone.
    only_new = replace(shred_settings, master_key=f"m2:{NEW_KEY}")
    for app in apps:
        record = lifecycle.get(conn, app.app_id)
        ring = dek.KeyRing.with_apps(only_new.master_key, record)
        assert record is not None
        assert record.dek == replace(dek_of(app), wrapped=dek_of(record).wrapped)
        for kid, value in signing_keys_in_dump(before[app.app_id]):
            ring.open(value, context=key_context(app.app_id, kid))
    assert cli(rotated, "keys", "rewrap", "--json").stdout.count('"rewrapped": 0') == 1
    # A receipt issued with only the new key still verifies with the stored public key.
    victim = apps[0]
    deleted = cli(only_new, "apps", "delete", victim.app_id, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert cli(only_new, "apps", "verify-deleted", deleted.stdout.strip()).returncode == 0


def test_the_service_role_reads_app_keys_and_cannot_change_them(
    shred_db: ScratchDatabase, shred_settings: Settings
) -> None:
    app = provision(shred_settings)
    with psycopg.connect(shred_db.service_dsn, autocommit=True) as service:
        row = service.execute(
            "SELECT dek_id FROM oneauth.app_keys WHERE app_id = %s", (app.app_id,)
        ).fetchone()
        assert row is not None
        for statement in (
            "DELETE FROM oneauth.app_keys",
            "UPDATE oneauth.app_keys SET wrapped_dek = wrapped_dek",
            "SELECT * FROM oneauth.receipt_keys",
            "SELECT * FROM oneauth.deletion_receipts",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                service.execute(statement)


async def test_the_service_seals_with_the_apps_key_and_forgets_a_deleted_one(
    provision: Callable[..., AppRecord], services: Services, settings: Settings
) -> None:
    """Through the running service: the registry teaches the ring each app's key."""
    app = provision()
    async with services.router.app(app.app_id) as c:
        value = await c.fetchval(
            "SELECT private_sealed FROM signing_keys WHERE alg = 'ES256' AND state = 'active'"
        )
        kid = await c.fetchval(
            "SELECT kid FROM signing_keys WHERE alg = 'ES256' AND state = 'active'"
        )
    assert isinstance(services.box, dek.KeyRing)
    assert sealed_key_id(value) == services.box.dek_id_of(app.app_id) == dek_of(app).dek_id
    issued = services.box.seal(b"x", context=f"app:{app.app_id}/totp/u/f")
    assert sealed_key_id(issued) == dek_of(app).dek_id
    with ops.connect(settings.operator_url) as c:
        lifecycle.delete_app(c, app.app_id, settings=settings)
    for _ in range(100):  # the registry's change notice drops the cached record
        record = await services.registry.get(app.app_id)
        if record is not None and record.status == "deleted":
            break
        await asyncio.sleep(0.05)
    assert not services.box.knows(app.app_id)
    with pytest.raises(SecretBoxError):
        services.box.open(value, context=key_context(app.app_id, kid))


def test_provisioning_at_scale_stays_cheap(conn: lifecycle.Conn, shred_settings: Settings) -> None:
    """The key adds one AES-GCM wrap and one indexed row per app; reading it with the
    registry row is one primary-key probe. Measured on 2,000 registry rows (rolled back)."""
    ring = dek.KeyRing.from_config(shred_settings.master_key)
    n = 2000
    figures: dict[str, Any] = {}
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name)"
            " SELECT 'z-scale-' || i, 'x', 'z_scale_' || i, 'z_scale_' || i"
            " FROM generate_series(1, %s) i",
            (n,),
        )
        started = time.perf_counter()
        for i in range(1, n + 1):
            dek.create(conn, ring, f"z-scale-{i}")
        figures["dek_create_ms"] = (time.perf_counter() - started) * 1000 / n
        started = time.perf_counter()
        for i in range(1, 201):
            record = lifecycle.get(conn, f"z-scale-{i * 7}")
            assert record is not None
            assert record.dek is not None
        figures["registry_read_ms"] = (time.perf_counter() - started) * 1000 / 200
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN SELECT (SELECT k.dek_id || ':' || k.wrapped_dek FROM oneauth.app_keys k"
                " WHERE k.app_id = apps.app_id) FROM oneauth.apps WHERE app_id = 'z-scale-5'"
            )
        )
    print(f"\nshred scale figures ({n} apps): {json.dumps(figures)}")
    assert "app_keys_pkey" in plan, plan
    assert figures["dek_create_ms"] < 5, figures
    assert figures["registry_read_ms"] < 5, figures


def test_install_restores_an_archived_key_and_refuses_another_apps(
    shred_settings: Settings, conn: lifecycle.Conn
) -> None:
    """What `apps import` into the same app_id does with the archive's app_key.json."""
    a, b = provision(shred_settings), provision(shred_settings)
    archived = dek.fetch(conn, a.app_id)
    assert archived is not None
    ring = dek.KeyRing.from_config(shred_settings.master_key)
    with pytest.raises(SecretBoxError), conn.transaction():  # A's key under B's id: bound to A
        dek.install(conn, ring, b.app_id, archived, replace=True)
    with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():  # needs --replace
        dek.install(conn, ring, a.app_id, archived)
    with conn.transaction():
        dek.install(conn, ring, a.app_id, archived, replace=True)
    assert dek.fetch(conn, b.app_id) == b.dek
    restored = lifecycle.get(conn, a.app_id)
    assert restored is not None
    assert restored.dek is not None
    assert dek_of(restored).dek_id == archived.dek_id
    fresh = dek.KeyRing.with_apps(shred_settings.master_key, restored)
    with conn.transaction(), ops.app_context(conn, a.names):
        for kid, value in conn.execute("SELECT kid, private_sealed FROM signing_keys"):
            fresh.open(value, context=key_context(a.app_id, kid))
