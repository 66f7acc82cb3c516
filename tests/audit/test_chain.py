"""The audit log's hash chain: sealing in id order behind a safe horizon, verification
that names the first bad row, signed checkpoints, retention (A2)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import psycopg
import pytest
from asyncpg.transaction import Transaction

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.auditchain import chain, checkpoints, repo
from oneauth.auditchain.sealer import Sealer, SealerConfig
from oneauth.db import ops
from oneauth.db.naming import quote_ident
from oneauth.db.pool import create_pool
from oneauth.db.router import Router
from oneauth.services import Services
from oneauth.settings import Settings
from test_keys_rotation import cli

from ._helpers import ids, make_sealer, rechain, stored_checkpoints, superuser, verify, write


async def _seal(services: Services, app: AppRecord, rounds: int = 2) -> None:
    sealer = make_sealer(services)
    for _ in range(rounds):
        await sealer.seal_app(app)


async def test_rows_are_sealed_in_id_order_and_the_chain_verifies(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = provision()
    await write(services, app, 5)
    await _seal(services, app)
    assert await ids(services, app, "audit_chain") == await ids(services, app)
    async with services.router.enter(app) as conn:
        links = await conn.fetch("SELECT prev_hash, row_hash FROM audit_chain ORDER BY audit_id")
        rows = await conn.fetch(f"SELECT {chain.SELECT_COLUMNS} FROM audit_log ORDER BY id")
    assert bytes(links[0]["prev_hash"]) == chain.genesis(app.app_id)
    for before, after in itertools.pairwise(links):
        assert after["prev_hash"] == before["row_hash"]
    # The documented serialisation, recomputed by hand for the first row.
    first = rows[0]
    text = json.dumps(
        [
            1,
            first["id"],
            chain.micros(first["occurred_at"]),
            *(first[c] for c in chain.COLUMNS[2:-1]),
            json.loads(first["details"]),
        ],
        ensure_ascii=True,
        separators=(",", ":"),
        sort_keys=True,
    )
    assert '"nested":{"a":[1.5,null],"b":1}' in text
    assert "\\u00e9\\u2603" in text
    import hashlib

    expected = hashlib.sha256(chain.genesis(app.app_id) + text.encode()).digest()
    assert bytes(links[0]["row_hash"]) == expected
    done = cli(settings, "audit", "verify", "--app", app.app_id)
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout


async def _late_row_under_committed_ones(
    held: asyncpg.Connection, services: Services, app: AppRecord
) -> tuple[Transaction, int]:
    """An audit row drawn in a transaction left open on ``held``, then three rows
    with larger ids committed: the open transaction and the late row's id."""
    tx = held.transaction()
    await tx.start()
    await held.execute(
        "SELECT set_config('role', $1, true), set_config('search_path', $2, true)",
        app.names.role,
        quote_ident(app.names.schema),
    )
    late_id: int = await held.fetchval(
        "INSERT INTO audit_log (event, outcome) VALUES ('test.late', 'success') RETURNING id"
    )
    await write(services, app, 3)  # ids above late_id, committed
    return tx, late_id


async def test_a_late_commit_is_sealed_in_its_place(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    """A transaction draws an audit id, stays open while rows with larger ids commit
    and the sealer runs; its row is never skipped: the chain waits for it."""
    app = provision()
    await write(services, app, 2)
    sealer = make_sealer(services)
    await sealer.seal_app(app)
    before = await ids(services, app, "audit_chain")
    assert len(before) == 2
    held = await asyncpg.connect(settings.database_url)
    try:
        tx, late_id = await _late_row_under_committed_ones(held, services, app)
        later = [i for i in await ids(services, app) if i > late_id]
        assert len(later) == 3
        for _ in range(3):
            visit = await sealer.seal_app(app)
            assert visit.complete is False  # committed rows wait above the head
        sealed = await ids(services, app, "audit_chain")
        assert sealed == before  # nothing at or above the open row's id
        assert max(sealed) < late_id
        # Meanwhile an unrelated fresh sealer (another process) agrees.
        await make_sealer(services).seal_app(app)
        assert await ids(services, app, "audit_chain") == before
        await tx.commit()
    finally:
        await held.close()
    await sealer.seal_app(app)
    await sealer.seal_app(app)
    sealed = await ids(services, app, "audit_chain")
    assert sealed == await ids(services, app)
    assert late_id in sealed
    assert sealed.index(late_id) == 2
    assert (await verify(services, app)).ok


async def test_a_late_commit_is_sealed_in_its_place_under_a_repeatable_read_default(
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A visit observes the writers and reads the rows in one transaction: that holds
    only if the rows are read in a snapshot taken after the writers were read. Here
    the server's default is REPEATABLE READ (one snapshot, from the first statement)
    and the late row commits between the visit's first statement and its writers
    check, with committed rows above it: sealed past it, it would be left out of
    the chain for good."""
    app = provision()
    await write(services, app, 1)
    pool = await create_pool(
        settings,
        min_size=1,
        max_size=1,
        server_settings={
            "application_name": "oneauth-test",
            "default_transaction_isolation": "repeatable read",
        },
    )
    held = await asyncpg.connect(settings.database_url)
    try:
        sealer = Sealer(
            settings,
            services.pool,
            services.registry,
            Router(pool, services.registry),
            services.keys,
            services.box,
            SealerConfig(),
        )
        tx, late_id = await _late_row_under_committed_ones(held, services, app)
        observe = repo.allocated

        async def allocated_then_the_late_commit(conn: asyncpg.Connection) -> int:
            value = await observe(conn)
            await tx.commit()  # after the visit's first snapshot, before its writers check
            return value

        monkeypatch.setattr(repo, "allocated", allocated_then_the_late_commit)
        visit = await sealer.seal_app(app)
        monkeypatch.setattr(repo, "allocated", observe)
    finally:
        await held.close()
        await pool.close()
    assert visit.complete
    sealed = await ids(services, app, "audit_chain")
    assert sealed == await ids(services, app)
    assert sealed.index(late_id) == 1
    assert (await verify(services, app)).ok


async def test_rolled_back_ids_leave_a_gap_that_is_not_a_problem(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    await write(services, app, 1)
    with pytest.raises(RuntimeError):
        async with services.router.enter(app) as conn:
            await conn.execute("INSERT INTO audit_log (event, outcome) VALUES ('test.x', 'error')")
            raise RuntimeError("rolled back")
    await write(services, app, 1)
    await _seal(services, app)
    report = await verify(services, app)
    assert report.ok
    assert report.sealed == 2


async def test_concurrent_writers_and_sealers_lose_nothing(
    isolated_services: Services, provision: Callable[..., AppRecord]
) -> None:
    services = isolated_services
    app = provision()
    sealers = [make_sealer(services) for _ in range(2)]
    stop = asyncio.Event()

    async def seal_loop(s: object) -> None:
        assert hasattr(s, "seal_app")
        while not stop.is_set():
            await s.seal_app(app)
            await asyncio.sleep(0.01)

    loops = [asyncio.create_task(seal_loop(s)) for s in sealers]
    await asyncio.gather(*(write(services, app, 5) for _ in range(8)))
    stop.set()
    await asyncio.gather(*loops)
    await _seal(services, app, 3)
    assert await ids(services, app, "audit_chain") == await ids(services, app)
    assert len(await ids(services, app)) == 40
    assert (await verify(services, app)).ok


@pytest.fixture
def isolated_services(isolated: object) -> Services:
    services = getattr(isolated, "services")  # noqa: B009
    assert isinstance(services, Services)
    return services


# --- tampering as a superuser ---------------------------------------------------------


async def _sealed_app(
    services: Services, provision: Callable[..., AppRecord], n: int = 6
) -> AppRecord:
    app = provision()
    await write(services, app, n)
    await _seal(services, app)
    return app


def _verify_cli(settings: Settings, app: AppRecord, *extra: str) -> tuple[int, str]:
    done = cli(settings, "audit", "verify", "--app", app.app_id, *extra)
    return done.returncode, done.stderr


async def test_a_changed_row_is_named(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    app = await _sealed_app(services, provision)
    victim = (await ids(services, app))[3]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("UPDATE audit_log SET outcome = 'failure' WHERE id = %s", (victim,))
    code, err = _verify_cli(settings, app)
    assert code == 1
    assert f"row {victim}: its content no longer matches" in err.splitlines()[0]
    report = await verify(services, app)
    assert report.problems[0].kind == "changed"
    assert report.problems[0].audit_id == victim


async def test_a_deleted_row_is_named(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    app = await _sealed_app(services, provision)
    victim = (await ids(services, app))[2]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("DELETE FROM audit_log WHERE id = %s", (victim,))
    code, err = _verify_cli(settings, app)
    assert code == 1
    assert f"row {victim}: sealed in the chain but missing" in err
    # Deleting its chain entry too leaves a break in the links.
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("DELETE FROM audit_chain WHERE audit_id = %s", (victim,))
    report = await verify(services, app)
    first = report.problems[0]
    assert first.kind == "deleted"
    assert first.audit_id == victim + 1
    assert f"between {victim - 1} and {victim + 1}" in first.message


async def test_a_row_inserted_in_the_middle_is_named(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    app = provision()
    await write(services, app, 2)
    with pytest.raises(RuntimeError):  # a rolled-back id: a free slot in the middle
        async with services.router.enter(app) as conn:
            await conn.execute("INSERT INTO audit_log (event, outcome) VALUES ('test.x', 'error')")
            raise RuntimeError
    await write(services, app, 2)
    await _seal(services, app)
    present = await ids(services, app)
    slot = next(i for i in range(present[0], present[-1]) if i not in present)
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute(
            "INSERT INTO audit_log (id, event, outcome) OVERRIDING SYSTEM VALUE"
            " VALUES (%s, 'user.login', 'success')",
            (slot,),
        )
    code, err = _verify_cli(settings, app)
    assert code == 1
    assert f"row {slot}: in audit_log inside the sealed range but never sealed" in err


async def test_reordered_rows_are_named(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    app = await _sealed_app(services, provision)
    a, b = (await ids(services, app))[1:3]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute(
            "UPDATE audit_log t SET target_id = s.target_id, details = s.details"
            " FROM audit_log s WHERE (t.id, s.id) IN ((%s, %s), (%s, %s))",
            (a, b, b, a),
        )
    report = await verify(services, app)
    first = report.problems[0]
    assert first.kind == "reordered"
    assert first.audit_id == a
    assert f"holds the content sealed as row {b}" in first.message


async def test_a_consistent_rewrite_is_caught_by_the_signed_checkpoint(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    app = await _sealed_app(services, provision)
    sealer = make_sealer(services)
    draft = await sealer.checkpoint(app)
    assert draft is not None
    assert draft.seq == 1
    await write(services, app, 2)
    await sealer.seal_app(app)
    await sealer.seal_app(app)
    second = await sealer.checkpoint(app)
    assert second is not None
    assert second.seq == 2
    assert (await verify(services, app)).ok
    victim = (await ids(services, app))[1]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("UPDATE audit_log SET actor_id = 'someone-else' WHERE id = %s", (victim,))
        rechain(su, app)  # every hash recomputed: the chain alone looks intact
    code, err = _verify_cli(settings, app)
    assert code == 1
    first = err.splitlines()[0]
    assert f"row {draft.audit_id}: the chain head here differs from the one signed" in first
    assert f"at or before {draft.audit_id}" in first
    report = await verify(services, app)
    assert report.problems[0].kind == "rewritten"
    assert report.problems[0].audit_id == draft.audit_id


async def test_checkpoints_are_signed_exported_and_bound_to_their_app(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    a = await _sealed_app(services, provision)
    b = await _sealed_app(services, provision)
    sealer = make_sealer(services)
    assert await sealer.checkpoint(a) is not None
    assert await sealer.checkpoint(a) is None  # nothing moved: no new checkpoint
    assert await sealer.checkpoint(b) is not None
    exported = json.loads(cli(settings, "audit", "checkpoints", "--app", a.app_id, "--json").stdout)
    assert [c["seq"] for c in exported] == [1]
    cp = exported[0]
    claims = json.loads(
        __import__("base64").urlsafe_b64decode(cp["jws"].split(".")[1] + "==").decode()
    )
    assert claims["app_id"] == a.app_id
    assert claims["iss"] == services.settings.issuer_for(a.app_id)
    assert claims["row_hash"] == cp["row_hash"]
    assert claims["audit_id"] == cp["audit_id"]
    # The JWS verifies with the app's published key (an auditor's check).
    from jwcrypto.jwk import JWK
    from jwcrypto.jws import JWS

    token = JWS()
    token.deserialize(cp["jws"])
    token.verify(JWK(**cp["public_jwk"]))
    # A's checkpoint does not vouch for B's chain: app bound in the claims and the proof.
    anchors, problems = checkpoints.verify_all([dict(cp, seq=1)], app_id=b.app_id, box=services.box)
    assert not anchors
    assert problems
    with superuser(pg_admin_dsn, settings) as su:
        su.execute(
            "INSERT INTO oneauth.audit_checkpoints (app_id, seq, kind, audit_id, row_hash,"
            " pruned_through, jws, kid, public_jwk, key_proof)"
            " SELECT %s, 2, kind, audit_id, row_hash, pruned_through, jws, kid, public_jwk,"
            " key_proof FROM oneauth.audit_checkpoints WHERE app_id = %s AND seq = 1",
            (b.app_id, a.app_id),
        )
    report = await verify(services, b)
    assert not report.ok
    assert report.problems[0].kind == "checkpoint"
    assert "checkpoint #2" in report.problems[0].message


async def test_a_checkpoint_signed_with_a_key_of_ones_own_is_refused(
    services: Services, provision: Callable[..., AppRecord], settings: Settings, pg_admin_dsn: str
) -> None:
    from oneauth.secretbox import SecretBox, generate_master_key
    from oneauth.tokens.keys import generate_signing_key

    app = await _sealed_app(services, provision)
    victim = (await ids(services, app))[0]
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("UPDATE audit_log SET event = 'user.nothing' WHERE id = %s", (victim,))
        rechain(su, app)
        head = su.execute(
            "SELECT audit_id, row_hash FROM audit_chain ORDER BY audit_id DESC LIMIT 1"
        ).fetchone()
        assert head is not None
        forged = checkpoints.sign(
            generate_signing_key("ES256"),
            SecretBox.from_config(generate_master_key()),  # not the installation's
            app_id=app.app_id,
            issuer=settings.issuer_for(app.app_id),
            seq=1,
            kind="periodic",
            audit_id=int(head[0]),
            row_hash=bytes(head[1]),
            pruned_through=None,
            prev_jws=None,
        )
        su.execute(
            "INSERT INTO oneauth.audit_checkpoints (app_id, seq, kind, audit_id, row_hash,"
            " pruned_through, jws, kid, public_jwk, key_proof)"
            " VALUES (%s, 1, 'periodic', %s, %s, NULL, %s, %s, %s, %s)",
            (
                app.app_id,
                forged.audit_id,
                forged.row_hash,
                forged.jws,
                forged.kid,
                json.dumps(forged.public_jwk),
                forged.key_proof,
            ),
        )
    report = await verify(services, app)
    assert "is not vouched for as a signing key" in report.problems[0].message


async def test_deleting_the_newest_checkpoints_is_caught_with_a_kept_copy(
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
    pg_admin_dsn: str,
    tmp_path: Path,
) -> None:
    app = await _sealed_app(services, provision)
    sealer = make_sealer(services)
    await sealer.checkpoint(app)
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(await stored_checkpoints(services, app.app_id)))
    with superuser(pg_admin_dsn, settings, app) as su:
        su.execute("UPDATE audit_log SET details = '{}' WHERE id = (SELECT min(id) FROM audit_log)")
        rechain(su, app)
        su.execute("DELETE FROM oneauth.audit_checkpoints WHERE app_id = %s", (app.app_id,))
    code, _ = _verify_cli(settings, app)
    assert code == 0  # from the database alone: nothing left to compare with
    code, err = _verify_cli(settings, app, "--checkpoints", str(kept))
    assert code == 1
    assert "checkpoint #1 of the kept copy is missing from the database" in err
    assert "the chain head here differs" in err


async def test_the_export_is_ndjson_an_auditor_can_recompute(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    import hashlib

    app = await _sealed_app(services, provision, n=3)
    done = cli(settings, "audit", "export", "--app", app.app_id)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 3
    prev = chain.genesis(app.app_id).hex()
    for line in lines:
        values = [1, line["id"], line["occurred_at_us"]]
        values += [line[c] for c in chain.COLUMNS[2:-1]] + [line["details"]]
        text = json.dumps(values, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
        assert line["prev_hash"] == prev
        assert hashlib.sha256(bytes.fromhex(prev) + text.encode()).hexdigest() == line["row_hash"]
        prev = line["row_hash"]
    later = cli(settings, "audit", "export", "--app", app.app_id, "--from", "2999-01-01T00:00Z")
    assert later.returncode == 0
    assert later.stdout == ""


# --- the append-only rules and retention -----------------------------------------------


def test_the_chain_is_insert_only_and_delete_only_goes_through_prune(
    sync_conn: lifecycle.Conn, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    with sync_conn.transaction(), ops.app_context(sync_conn, app.names):
        sync_conn.execute("INSERT INTO audit_log (event, outcome) VALUES ('test.event', 'success')")
        sync_conn.execute(
            "INSERT INTO audit_chain (audit_id, prev_hash, row_hash)"
            " SELECT id, %s, %s FROM audit_log",
            (b"\0" * 32, b"\1" * 32),
        )
    for statement in (
        "UPDATE audit_chain SET row_hash = prev_hash",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_chain",
        "DELETE FROM audit_log",
        # Setting the marks by hand does not open young rows.
        "SELECT set_config('oneauth.audit_prune_through', '999999', true),"
        " set_config('oneauth.audit_prune_before', now()::text, true);"
        " DELETE FROM audit_log",
        "SELECT audit_prune(999999, now())",
        # Old enough, but never sealed: still refused.
        "INSERT INTO audit_log (occurred_at, event, outcome)"
        " VALUES (now() - interval '9 days', 'test.old', 'success');"
        " SELECT set_config('oneauth.audit_prune_through', '999999', true),"
        " set_config('oneauth.audit_prune_before', (now() - interval '2 days')::text, true);"
        " DELETE FROM audit_log WHERE event = 'test.old'",
    ):
        with (
            pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation)),
            sync_conn.transaction(),
            ops.app_context(sync_conn, app.names),
        ):
            sync_conn.execute(statement)


async def test_retention_prunes_old_rows_after_a_prune_checkpoint(
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
    sync_conn: lifecycle.Conn,
) -> None:
    app = provision()
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO audit_log (occurred_at, event, outcome)"
            " SELECT now() - interval '10 days' + g * interval '1 minute', 'test.old', 'success'"
            " FROM generate_series(1, 7) g"
        )
    await write(services, app, 3)
    sealer = make_sealer(services, prune_batch=3)
    await sealer.seal_app(app)
    await sealer.checkpoint(app)
    assert await sealer.prune_app(app) == 0  # no retention set: nothing pruned
    lifecycle.configure(sync_conn, app.app_id, set_values={"audit_retention_days": 5})
    fresh = lifecycle.get(sync_conn, app.app_id)
    assert fresh is not None
    app = fresh
    before = await ids(services, app)
    pruned = await sealer.prune_app(app)
    # Every old row, in batches of 3, but the configure row (new) and the fresh ones stay.
    assert pruned == 7
    after = await ids(services, app)
    assert after == before[7:]
    await sealer.seal_app(app)  # the configure row (written after the first seal)
    assert await ids(services, app, "audit_chain") == after
    stored = await stored_checkpoints(services, app.app_id)
    prunes = [c for c in stored if c["kind"] == "prune"]
    assert [c["pruned_through"] for c in prunes] == [before[2], before[5], before[6]]
    report = await verify(services, app)
    assert report.ok, report.problems
    assert report.pruned_through == before[6]
    code, err = _verify_cli(settings, app)
    assert code == 0, err


# --- the sweep: which apps, without entering every schema ---------------------------


async def test_the_sweep_visits_only_apps_whose_log_grew(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    quiet, busy = provision(), provision()
    await write(services, quiet, 1)
    await write(services, busy, 1)
    sealer = make_sealer(services, checkpoint_interval=3600.0)
    # Until the statistics writer flushes (about a second; longer on a loaded
    # machine): a deadline, not a count of sweeps.
    deadline = asyncio.get_running_loop().time() + 60
    while (await ids(services, quiet, "audit_chain")) != (await ids(services, quiet)):
        assert asyncio.get_running_loop().time() < deadline
        await sealer.sweep()
        await asyncio.sleep(0.2)
    await sealer.sweep()
    await write(services, busy, 2)
    visited: set[str] = set()
    while (await ids(services, busy, "audit_chain")) != (await ids(services, busy)):
        assert asyncio.get_running_loop().time() < deadline
        visited |= set(await sealer.sweep())
        await asyncio.sleep(0.2)
    assert busy.app_id in visited
    assert quiet.app_id not in visited
    # A new process (a deploy) starts from what oneauth.audit_sweep recorded.
    fresh = make_sealer(services)
    assert quiet.app_id not in await fresh.sweep()
    # Both apps' chains grew: a checkpoint each is due within the interval.
    assert quiet.app_id in sealer._checkpoint_due
    assert busy.app_id in sealer._checkpoint_due


async def test_the_in_process_sealer_seals_and_checkpoints(
    settings: Settings, provision: Callable[..., AppRecord]
) -> None:
    from dataclasses import replace

    from oneauth.asgi import create_app

    app_record = provision()
    service = create_app(
        replace(
            settings,
            audit_sealer="inprocess",
            audit_seal_interval=0.2,
            audit_checkpoint_interval=10.0,
            pool_max_size=3,
        ),
        configure_logging=False,
    )
    async with service.router.lifespan_context(service):
        services = service.state.services
        assert isinstance(services, Services)
        await write(services, app_record, 3)
        deadline = asyncio.get_running_loop().time() + 60
        while len(await ids(services, app_record, "audit_chain")) < 3:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
        while not await stored_checkpoints(services, app_record.app_id):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.5)
        assert (await verify(services, app_record)).ok


async def test_checkpoints_signed_before_a_key_rotation_still_verify(
    services: Services, provision: Callable[..., AppRecord], settings: Settings
) -> None:
    app = await _sealed_app(services, provision, n=2)
    sealer = make_sealer(services)
    first = await sealer.checkpoint(app)
    assert first is not None
    rotated = cli(settings, "keys", "rotate", app.app_id, "--force")
    assert rotated.returncode == 0, rotated.stderr
    services.keys.on_change(app.app_id)  # what the rotation's NOTIFY does, without waiting
    await write(services, app, 2)
    await _seal(services, app)
    second = await sealer.checkpoint(app)
    assert second is not None
    assert second.kid != first.kid
    report = await verify(services, app)
    assert report.ok, report.problems
    assert report.checkpoints_matched == 2
