"""`oneauth apps export|import`: real pg_dump and pg_restore, a second installation (X1-X6)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from apiclient import PASSWORD, default_client_id, login, refresh, signup
from conftest import ScratchDatabase, new_app_id
from oneauth.apps import archive, lifecycle, sealed, transfer
from oneauth.apps.archive import ArchiveError
from oneauth.apps.dek import KeyRing
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.db import ops, templates
from oneauth.secretbox import SecretBox, SecretBoxError
from oneauth.services import Services
from oneauth.settings import Settings
from oneauth.webhooks import endpoints


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONEAUTH_DATABASE_URL": settings.database_url,
        "ONEAUTH_OPERATOR_DATABASE_URL": settings.operator_url,
        "ONEAUTH_PUBLIC_URL": settings.public_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "oneauth.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


@dataclass
class Installation:
    db: ScratchDatabase
    settings: Settings
    client: httpx.AsyncClient


@pytest.fixture(scope="module")
def second_db(make_database: Callable[[str], ScratchDatabase]) -> ScratchDatabase:
    """Another installation on the same server: its own database, operator, namespace."""
    db = make_database("restore")
    migrate_all(db.dsn)
    return db


@pytest.fixture
async def second(second_db: ScratchDatabase) -> AsyncIterator[Installation]:
    settings = second_db.settings(pool_min_size=1, pool_max_size=4, registry_cache_ttl=5.0)
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Installation(second_db, settings, c)


def export(settings: Settings, app_id: str, out: Path) -> transfer.ExportResult:
    with ops.connect(settings.operator_url) as conn:
        return transfer.export(conn, settings, app_id, out)


def import_(settings: Settings, path: Path, **kwargs: Any) -> transfer.ImportResult:
    with ops.connect(settings.operator_url) as conn:
        return transfer.import_archive(conn, settings, path, **kwargs)


async def populated(http: httpx.AsyncClient, app: AppRecord, n: int = 3) -> dict[str, Any]:
    """Users with passwords, one signed in (access + refresh token)."""
    emails = [f"user{i}@example.com" for i in range(n)]
    for email in emails:
        await signup(http, app.app_id, email)
    signed = await login(http, app.app_id, emails[0])
    assert signed.status_code == 200, signed.text
    return {"emails": emails, "tokens": signed.json()}


def count(settings: Settings, app: AppRecord | str, table: str) -> int:
    with ops.connect(settings.operator_url) as conn, conn.transaction():
        record = app if isinstance(app, AppRecord) else lifecycle.get(conn, app)
        assert record is not None
        with ops.app_context(conn, record.names):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def events(settings: Settings, app_id: str) -> list[tuple[str, str | None]]:
    with ops.connect(settings.operator_url) as conn, conn.transaction():
        record = lifecycle.get(conn, app_id)
        assert record is not None
        with ops.app_context(conn, record.names):
            return [
                (str(r[0]), r[1])
                for r in conn.execute("SELECT event, details->>'mode' FROM audit_log ORDER BY id")
            ]


def test_every_app_table_is_classified_for_clones(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    """X6: a table added later must be declared kept or dropped before a clone copies it."""
    app = provision()
    with ops.connect(settings.operator_url) as conn:
        tables = {
            str(r[0])
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace"
                " AND relkind IN ('r', 'p')",
                (app.names.schema,),
            )
        }
    assert not transfer.KEEP_ON_CLONE & transfer.DROP_ON_CLONE
    assert tables == transfer.KEEP_ON_CLONE | transfer.DROP_ON_CLONE
    # The sealed-column list agrees: a kept secret lives in a kept table, and so on.
    for entry in sealed.SEALED:
        side = transfer.KEEP_ON_CLONE if entry.on_clone == "keep" else transfer.DROP_ON_CLONE
        assert entry.table in side, entry


async def test_export_then_restore_into_a_fresh_installation(
    settings: Settings,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
    second: Installation,
    tmp_path: Path,
) -> None:
    app = provision(name="Shop to move")
    with ops.connect(settings.operator_url) as conn:
        lifecycle.configure(conn, app.app_id, set_values={"primary_color": "#336699"})
        app = lifecycle.get(conn, app.app_id) or app
    data = await populated(client, app, n=2)
    out = tmp_path / "shop.oneauth"
    done = cli(settings, "apps", "export", app.app_id, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert manifest["schema_version"] == templates.latest_version("app")
    assert set(manifest["members"]) == {
        "registry.json",
        "app_key.json",
        "audit_checkpoints.json",
        "schema.dump",
    }
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    # Not over an existing file.
    with pytest.raises(lifecycle.AppConflict, match="exists"):
        export(settings, app.app_id, out)

    restored = cli(second.settings, "apps", "import", str(out), "--json")
    assert restored.returncode == 0, restored.stderr
    body = json.loads(restored.stdout)
    assert body["mode"] == "restore"
    assert body["app_id"] == app.app_id
    assert body["rows"]["users"] == 2
    assert body["settings"] == app.settings
    # Another installation: its own role namespace, same schema name.
    assert body["role"] != app.names.role
    assert body["schema"] == app.names.schema

    for table in ("users", "audit_chain", "sessions", "signing_keys", "clients"):
        assert count(second.settings, app.app_id, table) == count(settings, app, table), table
    # The whole log came along, plus the import's own row.
    assert count(second.settings, app.app_id, "audit_log") == count(settings, app, "audit_log") + 1
    assert events(second.settings, app.app_id)[-1] == ("app.import", "restore")
    # Same app, same keys and sessions: the user and even the old refresh token work.
    assert (await login(second.client, app.app_id, data["emails"][1])).status_code == 200
    me = await second.client.get(
        f"/apps/{app.app_id}/v1/me", headers=bearer(data["tokens"]["access_token"])
    )
    assert me.status_code == 200
    cid = await default_client_id(second.client, app.app_id)
    assert (
        await refresh(second.client, app.app_id, cid, data["tokens"]["refresh_token"])
    ).status_code == 200

    # A second import of the same archive: the slot is taken now.
    with pytest.raises(lifecycle.AppConflict, match="pass --replace"):
        import_(second.settings, out)


async def test_clone_gets_new_keys_and_refuses_the_originals_tokens(
    settings: Settings,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
    services: Services,
    tmp_path: Path,
) -> None:
    """X6: a clone keeps users and passwords, not tokens; A's tokens are refused at the
    clone and the clone's at A."""
    app = provision(name="Original")
    data = await populated(client, app, n=2)
    async with services.router.enter(app) as conn:
        hook, hook_secret = await endpoints.create(
            conn,
            services.box,
            services.settings,
            app.app_id,
            url="https://hooks.example.com/in",
            event_types=("user.created",),
        )
    out = tmp_path / "a.oneauth"
    export(settings, app.app_id, out)
    clone_id = new_app_id("clone")
    result = import_(settings, out, as_app=clone_id)
    assert result.mode == "clone"
    assert result.app.app_id == clone_id
    assert result.app.display_name == "Original"
    assert "sessions" not in result.rows
    assert "signing_keys" not in result.rows
    assert result.rows["users"] == 2

    kids_a = {
        k["kid"]
        for k in (await client.get(f"/apps/{app.app_id}/.well-known/jwks.json")).json()["keys"]
    }
    jwks = await client.get(f"/apps/{clone_id}/.well-known/jwks.json")
    assert jwks.status_code == 200, jwks.text
    kids_c = {k["kid"] for k in jwks.json()["keys"]}
    assert kids_c
    assert not kids_a & kids_c

    # Users sign in at the clone with their password.
    at_clone = await login(client, clone_id, data["emails"][1])
    assert at_clone.status_code == 200, at_clone.text
    clone_tokens = at_clone.json()
    assert (
        await login(client, clone_id, data["emails"][1], "wrong-" + PASSWORD)
    ).status_code == 401

    a_access, c_access = data["tokens"]["access_token"], clone_tokens["access_token"]
    assert (
        await client.get(f"/apps/{clone_id}/v1/me", headers=bearer(a_access))
    ).status_code == 401
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(c_access))
    ).status_code == 401
    assert (
        await client.get(f"/apps/{clone_id}/v1/me", headers=bearer(c_access))
    ).status_code == 200
    assert (
        await client.get(f"/apps/{app.app_id}/v1/me", headers=bearer(a_access))
    ).status_code == 200

    # A's refresh token is unknown at the clone (sessions are not copied), with the
    # same (copied) client id; and the clone's refresh token is unknown at A.
    cid = await default_client_id(client, clone_id)
    assert cid == await default_client_id(client, app.app_id)
    refused = await refresh(client, clone_id, cid, data["tokens"]["refresh_token"])
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] == "invalid_grant"
    refused = await refresh(client, app.app_id, cid, clone_tokens["refresh_token"])
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] == "invalid_grant"
    assert (
        await refresh(client, app.app_id, cid, data["tokens"]["refresh_token"])
    ).status_code == 200

    # The webhook secret (kept) is resealed for the clone: it opens under the clone's
    # data key and context only; the endpoint is there but disabled.
    with ops.connect(settings.operator_url) as conn, conn.transaction():
        clone = lifecycle.get(conn, clone_id)
        assert clone is not None
        with ops.app_context(conn, clone.names):
            row = conn.execute(
                "SELECT secret_sealed, enabled FROM webhook_endpoints WHERE id = %s", (hook.id,)
            ).fetchone()
    assert row is not None
    assert row[1] is False
    ring = KeyRing.with_apps(settings.master_key, clone, app)
    assert endpoints.open_secret(ring, clone_id, hook.id, row[0]) == hook_secret
    with pytest.raises(SecretBoxError):
        endpoints.open_secret(ring, app.app_id, hook.id, row[0])
    # The clone's log starts with its import, none of A's history.
    assert events(settings, clone_id)[0] == ("app.import", "clone")
    assert count(settings, clone_id, "audit_log") < count(settings, app, "audit_log")

    # The original is unchanged.
    assert count(settings, app, "users") == 2
    with ops.connect(settings.operator_url) as conn:
        assert (lifecycle.get(conn, app.app_id) or app).status == "active"


async def test_replace_is_required_and_restores_the_archived_state(
    settings: Settings,
    provision: Callable[..., AppRecord],
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    app = provision()
    data = await populated(client, app, n=2)
    out = tmp_path / "r.oneauth"
    export(settings, app.app_id, out)
    await signup(client, app.app_id, "after-backup@example.com")

    refused = cli(settings, "apps", "import", str(out))
    assert refused.returncode == 1
    assert "exists (active); pass --replace" in refused.stderr
    assert count(settings, app, "users") == 3

    # The registry row is suspended while the schema is rebuilt: watch it from outside.
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        with ops.connect(settings.operator_url) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT status FROM oneauth.apps WHERE app_id = %s", (app.app_id,)
                ).fetchone()
                assert row is not None
                seen.append(str(row[0]))
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = import_(settings, out, replace=True)
    finally:
        stop.set()
        watcher.join()
    assert result.mode == "replace"
    assert result.app.status == "active"
    assert "suspended" in seen
    assert count(settings, app, "users") == 2
    assert (await login(client, app.app_id, "after-backup@example.com")).status_code == 401
    assert (await login(client, app.app_id, data["emails"][1])).status_code == 200
    me = await client.get(
        f"/apps/{app.app_id}/v1/me", headers=bearer(data["tokens"]["access_token"])
    )
    assert me.status_code == 200

    # A replace that fails half-way (a dump pg_restore cannot read, in a correctly
    # sealed archive) rolls back: the data is as before and the app serves again.
    broken = tmp_path / "broken.oneauth"
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"PGDMP" + os.urandom(512))
    members = _members(out)
    manifest = json.loads(members["manifest.json"])
    archive.write(
        broken,
        {k: v for k, v in manifest.items() if k != "members"},
        {n: json.loads(members[n]) for n in archive.JSON_MEMBERS},
        garbage,
        SecretBox.from_config(settings.master_key),
    )
    with pytest.raises(ArchiveError, match="pg_restore could not read"):
        import_(settings, broken, replace=True)
    with ops.connect(settings.operator_url) as conn:
        assert (lifecycle.get(conn, app.app_id) or app).status == "active"
    assert count(settings, app, "users") == 2
    assert (await login(client, app.app_id, data["emails"][0])).status_code == 200


def test_a_deleted_app_id_is_not_a_slot(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    app = provision()
    out = tmp_path / "d.oneauth"
    export(settings, app.app_id, out)
    with ops.connect(settings.operator_url) as conn:
        lifecycle.delete(conn, app.app_id)
    with pytest.raises(lifecycle.AppConflict, match=r"never reused.*--as NEW_ID"):
        import_(settings, out, replace=True)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out: dict[str, bytes] = {}
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            out[info.name] = f.read()
        return out


def _write_members(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_damaged_altered_or_newer_archives_are_refused(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    """X1, X2: checked before anything is written; nothing is provisioned."""
    app = provision()
    good = tmp_path / "good.oneauth"
    export(settings, app.app_id, good)
    members = _members(good)
    box = SecretBox.from_config(settings.master_key)

    def refused(members: dict[str, bytes], name: str) -> str:
        path = tmp_path / name
        _write_members(path, members)
        with pytest.raises(ArchiveError) as caught:
            import_(settings, path, as_app=new_app_id("bad"))
        return str(caught.value)

    dump = bytearray(members["schema.dump"])
    dump[len(dump) // 2] ^= 0xFF
    assert "schema.dump does not match its checksum" in refused(
        {**members, "schema.dump": bytes(dump)}, "flipped.oneauth"
    )
    manifest = json.loads(members["manifest.json"])
    edited = json.dumps({**manifest, "schema_version": 999}).encode()
    assert "manifest.json was altered" in refused(
        {**members, "manifest.json": edited}, "edited.oneauth"
    )
    other_key = SecretBox.from_config("k2:" + "A" * 43)
    assert "seal does not open" in refused(
        {
            **members,
            "manifest.seal": other_key.seal(
                b"x", context=archive.seal_context(app.app_id)
            ).encode(),
        },
        "foreign.oneauth",
    )
    missing = dict(members)
    del missing["registry.json"]
    assert "incomplete: missing registry.json" in refused(missing, "missing.oneauth")
    assert "unexpected member '../evil'" in refused(
        {**members, "../evil": b"x"}, "traversal.oneauth"
    )
    truncated = tmp_path / "truncated.oneauth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    done = cli(settings, "apps", "import", str(truncated), "--as", new_app_id("bad"))
    assert done.returncode == 1
    assert "damaged" in done.stderr or "incomplete" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr

    # A correctly sealed archive from a newer release (schema version 999).
    newer = tmp_path / "newer.oneauth"
    fake_dump = tmp_path / "fake.dump"
    fake_dump.write_bytes(members["schema.dump"])
    archive.write(
        newer,
        {**{k: v for k, v in manifest.items() if k != "members"}, "schema_version": 999},
        {n: json.loads(members[n]) for n in archive.JSON_MEMBERS},
        fake_dump,
        box,
    )
    assert "schema version is 999, newer than this release's" in refused(
        _members(newer), "newer2.oneauth"
    )
    with ops.connect(settings.operator_url) as conn:
        bad = [a for a in lifecycle.list_apps(conn) if a.app_id.startswith("bad-")]
    assert bad == []


@pytest.fixture
def locked_neighbour(
    settings: Settings, provision: Callable[..., AppRecord]
) -> Iterator[AppRecord]:
    """Another app whose every table is held ACCESS EXCLUSIVE: anything touching its
    schema would wait."""
    other = provision()
    with psycopg.connect(settings.operator_url) as conn:
        conn.execute("SELECT set_config('role', %s, true)", (other.names.role,))
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace"
                " AND relkind = 'r'",
                (other.names.schema,),
            )
        ]
        for table in tables:
            conn.execute(f'LOCK TABLE "{other.names.schema}"."{table}" IN ACCESS EXCLUSIVE MODE')
        yield other
        conn.rollback()


def test_export_and_clone_touch_no_other_schema(
    settings: Settings,
    provision: Callable[..., AppRecord],
    locked_neighbour: AppRecord,
    tmp_path: Path,
) -> None:
    """X3: pg_dump -n locks the one schema; the import builds and fills only its own."""
    app = provision()
    out = tmp_path / "n.oneauth"
    started = time.perf_counter()
    export(settings, app.app_id, out)
    result = import_(settings, out, as_app=new_app_id("iso"))
    assert result.app.status == "active"
    assert import_(settings, out, replace=True).app.status == "active"
    assert time.perf_counter() - started < 25  # pg_dump's lock wait is 30 s


def test_two_clones_to_one_new_id_at_once(
    settings: Settings, provision: Callable[..., AppRecord], tmp_path: Path
) -> None:
    """Both imports provision under the app's advisory lock: one clone, one clear refusal."""
    app = provision()
    out = tmp_path / "c.oneauth"
    export(settings, app.app_id, out)
    target = new_app_id("twin")
    outcomes: list[str] = []

    def one() -> None:
        try:
            outcomes.append(import_(settings, out, as_app=target).mode)
        except lifecycle.AppConflict as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 2
    assert outcomes.count("clone") == 1
    refusal = next(o for o in outcomes if o != "clone")
    assert "exists" in refusal or "appeared during the import" in refusal


def test_an_older_archive_is_migrated_on_import(settings: Settings, tmp_path: Path) -> None:
    """An archive made at schema version N-1 is loaded at N-1, then migrated."""
    latest = templates.latest_version("app")
    with ops.connect(settings.operator_url) as conn:
        app = lifecycle.provision(
            conn, settings, new_app_id("old"), "Old", schema_version=latest - 1
        ).app
        conn.execute(
            "UPDATE oneauth.apps SET schema_version = %s WHERE app_id = %s",
            (latest - 1, app.app_id),
        )
    out = tmp_path / "old.oneauth"
    assert export(settings, app.app_id, out).manifest["schema_version"] == latest - 1
    result = import_(settings, out, as_app=new_app_id("new"))
    assert result.applied == [templates.load("app")[-1].filename]
    assert result.app.schema_version == latest
