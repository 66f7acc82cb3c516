"""Background retention (R1-R4): every kind of dead row goes, live rows stay, one
worker at a time, bounded batches, the audit chain still verifies, app A's
setting never prunes app B, and an idle cycle enters no schema.

On a database of its own: a cycle looks at every app of the installation, and
the session database holds hundreds by the time these run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from audit._helpers import ids, make_sealer, verify, write
from conftest import ScratchDatabase
from oneauth.apps import lifecycle
from oneauth.apps.migrate import migrate_all
from oneauth.apps.models import AppRecord
from oneauth.asgi import create_app
from oneauth.cli import retention as retention_cli
from oneauth.db import ops, templates
from oneauth.db.router import Router
from oneauth.retention import state
from oneauth.retention.worker import RetentionConfig, RetentionWorker
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.settings import Settings, SettingsError
from test_keys_rotation import cli


@dataclass
class Env:
    settings: Settings
    services: Services
    provision: Callable[..., AppRecord]


@pytest.fixture(scope="module")
async def env(make_database: Callable[[str], ScratchDatabase]) -> AsyncIterator[Env]:
    db = make_database("keep")
    migrate_all(db.dsn)
    settings = db.settings(pool_min_size=1, pool_max_size=6)

    def provision(**kwargs: Any) -> AppRecord:
        with ops.connect(settings.operator_url) as conn:
            app_id = f"r-{secrets.token_hex(5)}"
            return lifecycle.provision(conn, settings, app_id, "Retention", **kwargs).app

    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        yield Env(settings, app.state.services, provision)


def worker(services: Services, router: Router | None = None, **config: Any) -> RetentionWorker:
    return RetentionWorker(
        services.settings,
        services.pool,
        services.registry,
        router or services.router,
        services.keys,
        services.box,
        RetentionConfig(**config),
    )


async def db_now(services: Services) -> datetime:
    value: datetime = await services.pool.fetchval("SELECT now()")
    return value


# --- rows of every kind --------------------------------------------------------------

CLIENT = "cl_retention01"
LIVE_RAW, USED_RAW, OLD_RAW = "live-refresh", "recently-used", "long-used"

SEED = [
    "INSERT INTO users (id, email, email_normalized) VALUES"
    " ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'a@example.com')",
    "INSERT INTO clients (client_id, name, kind, grant_types, scopes, token_endpoint_auth_method)"
    f" VALUES ('{CLIENT}', 'c', 'public', '{{authorization_code,refresh_token}}', '{{openid}}',"
    " 'none')",
    # sessions: dead (expired 8 days ago), dead (revoked 8 days ago), kept (revoked
    # yesterday), live (with a refresh family of three generations)
    "INSERT INTO sessions (id, user_id, client_id, amr, auth_time, expires_at, revoked_at) VALUES"
    " ('10000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000001',"
    f" '{CLIENT}', '{{pwd}}', now(), now() - interval '8 days', NULL),"
    " ('10000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001',"
    f" '{CLIENT}', '{{pwd}}', now(), now() + interval '20 days', now() - interval '8 days'),"
    " ('10000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000001',"
    f" '{CLIENT}', '{{pwd}}', now(), now() + interval '20 days', now() - interval '1 day'),"
    " ('10000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-000000000001',"
    f" '{CLIENT}', '{{pwd}}', now(), now() + interval '90 days', NULL)",
    # the dead session's token (goes with it), and the live family: a token used and
    # expired 31 days ago (pruned), one used yesterday (kept: replay detection), the
    # current one
    "INSERT INTO refresh_tokens (token_hash, session_id, client_id, scope, expires_at, used_at)"
    " VALUES (sha256('dead-session'::bytea), '10000000-0000-0000-0000-000000000001',"
    f" '{CLIENT}', 'openid', now() - interval '8 days', NULL),"
    " ($1, '10000000-0000-0000-0000-000000000004',"
    f" '{CLIENT}', 'openid', now() - interval '31 days', now() - interval '40 days'),"
    " ($2, '10000000-0000-0000-0000-000000000004',"
    f" '{CLIENT}', 'openid', now() + interval '5 days', now() - interval '1 day'),"
    " ($3, '10000000-0000-0000-0000-000000000004',"
    f" '{CLIENT}', 'openid', now() + interval '29 days', NULL)",
    "INSERT INTO browser_sessions (id, token_hash, user_id, amr, expires_at) VALUES"
    " ('20000000-0000-0000-0000-000000000001', sha256('b1'::bytea),"
    " '00000000-0000-0000-0000-000000000001', '{pwd}', now() - interval '8 days'),"
    " ('20000000-0000-0000-0000-000000000002', sha256('b2'::bytea),"
    " '00000000-0000-0000-0000-000000000001', '{pwd}', now() + interval '1 day')",
    "INSERT INTO authorization_codes (code_hash, client_id, user_id, browser_session_id,"
    " redirect_uri, code_challenge, scope, auth_time, amr, created_at, expires_at) SELECT"
    f" sha256(v::bytea), '{CLIENT}', '00000000-0000-0000-0000-000000000001',"
    " '20000000-0000-0000-0000-000000000002', 'https://rp.example/cb', repeat('a', 43),"
    " 'openid', now(), '{pwd}', t, t + interval '5 minutes'"
    " FROM (VALUES ('dead', now() - interval '2 hours'), ('live', now())) AS x (v, t)",
    "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES"
    f" ('{CLIENT}', 'dead', now() - interval '2 hours'),"
    f" ('{CLIENT}', 'live', now() + interval '5 minutes')",
    "INSERT INTO one_time_tokens (purpose, user_id, email, token_hash, expires_at, used_at)"
    " VALUES ('verify_email', '00000000-0000-0000-0000-000000000001', 'a@example.com',"
    " sha256('o1'::bytea), now() - interval '2 hours', now() - interval '3 hours'),"
    " ('verify_email', '00000000-0000-0000-0000-000000000001', 'a@example.com',"
    " sha256('o2'::bytea), now() + interval '1 hour', NULL)",
    "INSERT INTO auth_flows (id, kind, secret_hash, binding, expires_at) VALUES"
    " ('30000000-0000-0000-0000-000000000001', 'login', sha256('f1'::bytea), 'api:x',"
    " now() - interval '2 hours'),"
    " ('30000000-0000-0000-0000-000000000002', 'login', sha256('f2'::bytea), 'api:x',"
    " now() + interval '10 minutes')",
    "INSERT INTO webauthn_challenges (challenge_hash, purpose, user_id, user_verification,"
    " expires_at) VALUES (sha256('w1'::bytea), 'register', '00000000-0000-0000-0000-000000000001',"
    " 'preferred', now() - interval '2 hours'), (sha256('w2'::bytea), 'register',"
    " '00000000-0000-0000-0000-000000000001', 'preferred', now() + interval '5 minutes')",
    "INSERT INTO identity_providers (id, kind, name, issuer, client_id, client_secret_sealed,"
    " scopes) VALUES ('idp_retention0000000001', 'oidc', 'Idp', 'https://idp.example', 'c',"
    " 'x', '{openid}')",
    # of the live flow, so that only their own rule removes them
    "INSERT INTO federation_requests (state_hash, flow_id, provider_id, nonce, verifier_sealed,"
    " expires_at) SELECT sha256(v::bytea), '30000000-0000-0000-0000-000000000002',"
    " 'idp_retention0000000001', 'n', 'v', t FROM (VALUES ('dead', now() - interval '2 hours'),"
    " ('live', now() + interval '10 minutes')) AS x (v, t)",
    "INSERT INTO federation_pending_links (flow_id, provider_id, user_id, issuer, subject,"
    " email_verified, expires_at) SELECT '30000000-0000-0000-0000-000000000002',"
    " 'idp_retention0000000001', '00000000-0000-0000-0000-000000000001', 'https://idp.example',"
    " v, false, t FROM (VALUES ('dead', now() - interval '2 hours'),"
    " ('live', now() + interval '10 minutes')) AS x (v, t)",
    "INSERT INTO federation_codes (code_hash, user_id, amr, expires_at) SELECT sha256(v::bytea),"
    " '00000000-0000-0000-0000-000000000001', '{}', t FROM (VALUES ('dead',"
    " now() - interval '2 hours'), ('live', now() + interval '2 minutes')) AS x (v, t)",
    # throttle: window and lock over for 2 days (pruned); fresh; old window, live lock
    "INSERT INTO throttle (key, failures, window_start, locked_until, updated_at) VALUES"
    " ('acct:dead', 3, now() - interval '2 days', NULL, now() - interval '2 days'),"
    " ('acct:live', 3, now(), NULL, now()),"
    " ('acct:locked', 9, now() - interval '2 days', now() + interval '10 minutes',"
    " now() - interval '2 days')",
    # outbox: sent 8 days ago (pruned), pending 8 days ago (never), sent today
    "INSERT INTO outbox (kind, recipient, status, max_attempts, created_at) VALUES"
    " ('verify_email', 'dead@example.com', 'sent', 5, now() - interval '8 days'),"
    " ('verify_email', 'dead@example.com', 'dead', 5, now() - interval '8 days'),"
    " ('verify_email', 'pending@example.com', 'pending', 5, now() - interval '8 days'),"
    " ('verify_email', 'recent@example.com', 'sent', 5, now())",
    "INSERT INTO admin_idempotency (actor_type, actor_id, key, fingerprint, created_at) VALUES"
    " ('client', 'c', 'dead', sha256('k1'::bytea), now() - interval '3 days'),"
    " ('client', 'c', 'live', sha256('k2'::bytea), now())",
    "INSERT INTO webhook_endpoints (id, url, secret_sealed, event_types) VALUES"
    " ('whe_retention000000001', 'https://hooks.example/x', 'v1.x', '{user.created}')",
    "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, payload, status,"
    " created_at) SELECT 'evt_retention00000000' || n, 'whe_retention000000001',"
    " 'user.created', '{}', s, t FROM (VALUES (1, 'delivered', now() - interval '8 days'),"
    " (2, 'dead', now() - interval '8 days'), (3, 'pending', now() - interval '8 days'),"
    " (4, 'delivered', now())) AS x (n, s, t)",
]

KEPT = {
    "sessions": 2,
    "refresh_tokens": 2,
    "browser_sessions": 1,
    "authorization_codes": 1,
    "client_assertion_jtis": 1,
    "one_time_tokens": 1,
    "auth_flows": 1,
    "webauthn_challenges": 1,
    "federation_requests": 1,
    "federation_pending_links": 1,
    "federation_codes": 1,
    "throttle": 2,
    "outbox": 2,
    "webhook_deliveries": 2,
    "admin_idempotency": 1,
}


async def seed(services: Services, app: AppRecord) -> None:
    async with services.router.enter(app) as conn:
        for statement in SEED:
            if "$1" in statement:
                hashes = [sessions.hash_token(r) for r in (OLD_RAW, USED_RAW, LIVE_RAW)]
                await conn.execute(statement, *hashes)
            else:
                await conn.execute(statement)


async def counts(services: Services, app: AppRecord) -> dict[str, int]:
    async with services.router.enter(app) as conn:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in KEPT}


async def test_every_kind_of_dead_row_is_pruned_and_live_rows_stay(env: Env) -> None:
    services = env.services
    app = env.provision()
    await seed(services, app)
    now = await db_now(services)
    report = await worker(services).visit(app, now)
    assert report.pruned == {
        "sessions": 2,  # expired, revoked (their tokens with them)
        "refresh_tokens": 1,  # the long-used token of the live family
        "browser_sessions": 1,
        "authorization_codes": 1,
        "client_assertion_jtis": 1,
        "one_time_tokens": 1,
        "auth_flows": 1,
        "webauthn_challenges": 1,
        "federation_requests": 1,
        "federation_pending_links": 1,
        "federation_codes": 1,
        "throttle": 1,
        "outbox": 2,  # sent and dead; the old pending one stays
        "webhook_deliveries": 2,
        "admin_idempotency": 1,
    }
    assert not report.more
    assert await counts(services, app) == KEPT
    async with services.router.enter(app) as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'") == 1
        assert await conn.fetchval("SELECT key FROM throttle WHERE locked_until IS NOT NULL")
    # The old pending message and delivery look due but cannot go: not every cycle,
    # an hour from now (sooner than the federation code's hour after expiry).
    assert report.next_due == now + timedelta(hours=1)
    # A second visit finds nothing.
    again = await worker(services).visit(app, await db_now(services))
    assert again.total == 0


async def test_a_live_refresh_family_survives_and_still_detects_replay(env: Env) -> None:
    services = env.services
    app = env.provision()
    await seed(services, app)
    await worker(services).visit(app, await db_now(services))
    async with services.router.enter(app) as conn:
        rotated = await sessions.rotate(conn, LIVE_RAW, client_id=CLIENT, idle_ttl=3600)
        assert isinstance(rotated, sessions.Rotated)
    async with services.router.enter(app) as conn:
        # The token used yesterday is kept: presenting it again is a replay.
        replayed = await sessions.rotate(conn, USED_RAW, client_id=CLIENT, idle_ttl=3600)
        assert isinstance(replayed, sessions.Replayed)


async def test_a_batch_bound_is_respected(env: Env) -> None:
    services = env.services
    app = env.provision()
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO throttle (key, updated_at) SELECT 'k' || g, now() - interval '2 days'"
            " FROM generate_series(1, 25) g"
        )
    bounded = worker(services, batch_size=10, batches_per_visit=1)
    now = await db_now(services)
    first = await bounded.visit(app, now)
    assert first.pruned["throttle"] == 10
    assert first.more
    assert first.next_due == now
    second = await bounded.visit(app, now)
    assert second.pruned["throttle"] == 10
    assert second.more
    third = await bounded.visit(app, now)
    assert third.pruned["throttle"] == 5
    assert not third.more


async def test_the_cli_runs_one_cycle_and_says_what_it_pruned(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    services = env.services
    app = env.provision()
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO throttle (key, updated_at) SELECT 'k' || g, now() - interval '2 days'"
            " FROM generate_series(1, 4) g"
        )
    # In process (`oneauth retention run --once --all` is this function and a print).
    assert await retention_cli.run(env.settings, once=True, everything=True) == 0
    out = capsys.readouterr().out
    assert "pruned:" in out
    assert "throttle" in out
    async with services.router.enter(app) as conn:
        assert await conn.fetchval("SELECT count(*) FROM throttle") == 0


# --- one worker at a time ------------------------------------------------------------


async def test_two_workers_at_once_do_not_both_work(env: Env) -> None:
    services = env.services
    app = env.provision()
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO throttle (key, updated_at) SELECT 'k' || g, now() - interval '2 days'"
            " FROM generate_series(1, 300) g"
        )
    # A worker elsewhere holds the lease: this one skips its cycle, deleting nothing.
    assert await state.try_lead(services.pool, "elsewhere")
    skipped = await worker(services).run_once(everything=True)
    assert not skipped.leader
    assert skipped.visited == []
    await state.release(services.pool, "elsewhere")
    async with services.router.enter(app) as conn:
        assert await conn.fetchval("SELECT count(*) FROM throttle") == 300
    # Two at once: one cycle runs, the other skips (30 batches keep the first busy).
    one, two = (worker(services, batch_size=10, batches_per_visit=100) for _ in range(2))
    reports = await asyncio.gather(one.run_once(everything=True), two.run_once(everything=True))
    assert sorted(r.leader for r in reports) == [False, True]
    leader = next(r for r in reports if r.leader)
    assert leader.pruned["throttle"] >= 300
    async with services.router.enter(app) as conn:
        assert await conn.fetchval("SELECT count(*) FROM throttle") == 0
    # The lease was released: the next cycle leads, whichever worker runs it.
    assert (await two.run_once()).leader
    assert (await one.run_once()).leader


async def test_a_lease_left_by_a_dead_worker_expires(env: Env) -> None:
    pool = env.services.pool
    # A worker that died mid-cycle: its lease stays until it expires, then is taken.
    assert await state.try_lead(pool, "dead", seconds=0.5)
    assert not await state.try_lead(pool, "alive")
    assert await state.try_lead(pool, "dead")  # its own: renewable
    assert await state.renew(pool, "dead", seconds=0.5)
    await asyncio.sleep(0.8)
    assert await state.try_lead(pool, "alive")
    # The dead one, back, can renew nothing: the cycle it ran stops at its next chunk.
    assert not await state.renew(pool, "dead")
    await state.release(pool, "alive")
    assert (await worker(env.services).run_once()).leader


# --- audit rows: the chain still verifies --------------------------------------------


async def _old_audit(services: Services, app: AppRecord, n: int) -> None:
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO audit_log (occurred_at, event, outcome)"
            " SELECT now() - interval '10 days' + g * interval '1 minute', 'test.old', 'success'"
            " FROM generate_series(1, $1::int) g",
            n,
        )


def _configure(settings: Settings, app: AppRecord, **values: Any) -> AppRecord:
    with ops.connect(settings.operator_url) as conn:
        lifecycle.configure(conn, app.app_id, set_values=values)
        fresh = lifecycle.get(conn, app.app_id)
    assert fresh is not None
    return fresh


async def test_audit_rows_beyond_the_setting_go_and_verify_still_passes(env: Env) -> None:
    services, settings = env.services, env.settings
    app = env.provision()
    await _old_audit(services, app, 7)
    await write(services, app, 3)
    sealer = make_sealer(services)
    await sealer.seal_app(app)
    await sealer.checkpoint(app)
    app = _configure(settings, app, audit_retention_days=5)
    before = await ids(services, app)
    report = await worker(services, batch_size=3).visit(app, await db_now(services))
    assert report.pruned["audit_log"] == 7
    assert await ids(services, app) == before[7:]
    result = await verify(services, app)
    assert result.ok, result.problems
    done = cli(settings, "audit", "verify", "--app", app.app_id)
    assert done.returncode == 0, done.stderr
    # Due again when the oldest kept row passes the retention (5 days from now).
    assert report.next_due is not None
    assert (report.next_due - await db_now(services)).days >= 4


async def test_app_a_retention_does_not_prune_app_b(env: Env) -> None:
    services, settings = env.services, env.settings
    a, b = env.provision(), env.provision()
    for app in (a, b):
        await _old_audit(services, app, 4)
        await write(services, app, 2)
    a = _configure(settings, a, audit_retention_days=3)
    b = _configure(settings, b, audit_retention_days=30)  # its own, longer one
    b_before = await ids(services, b)
    # An ordinary cycle: both are due (a retention setting, nothing recorded yet).
    cycle = await worker(services).run_once()
    assert cycle.leader
    assert {a.app_id, b.app_id} <= set(cycle.visited)
    assert len(await ids(services, a)) == 3  # two new rows and the configure row
    assert await ids(services, b) == b_before
    done = cli(settings, "audit", "verify", "--app", a.app_id)
    assert done.returncode == 0, done.stderr


# --- which apps a cycle enters ---------------------------------------------------------


class CountingRouter(Router):
    """The service's router, counting the schemas entered."""

    def __init__(self, inner: Router) -> None:
        self.__dict__.update(inner.__dict__)
        self.entered: list[str] = []

    @contextlib.asynccontextmanager
    async def enter(
        self, record: AppRecord, *, read_committed: bool = False
    ) -> AsyncIterator[asyncpg.Connection]:
        self.entered.append(record.app_id)
        async with super().enter(record, read_committed=read_committed) as conn:
            yield conn


async def _settle(keeper: RetentionWorker) -> None:
    """Cycles until one enters nothing (a visit's own deletes make its app due once more;
    statistics reach the counters within about a second)."""
    deadline = time.monotonic() + 30
    while (await keeper.run_once()).visited:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.5)


class _CountingPool:
    """The control pool, counting the connections a cycle holds at each moment."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.held = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            self.held += 1
            try:
                yield conn
            finally:
                self.held -= 1


async def test_a_paced_cycle_spreads_its_visits_and_holds_no_control_connection(
    env: Env,
) -> None:
    """The worker's cycle spreads its visits over half its interval (here 2 s: each
    of the two slots pauses min(max_pause, 2 s x 0.5 x 2 / visits) after a visit) and
    holds no connection of the small control pool while it visits."""
    services = env.services
    for _ in range(4):
        app = env.provision()
        async with services.router.enter(app) as conn:
            await conn.execute("INSERT INTO throttle (key) VALUES ('acct:paced')")
    pool = _CountingPool(services.pool)
    keeper = RetentionWorker(
        services.settings,
        pool,
        services.registry,
        services.router,
        services.keys,
        services.box,
        RetentionConfig(interval=2.0, spread=0.5, concurrency=2, max_pause=1.0),
    )
    starts: list[float] = []
    held: list[int] = []
    visit = keeper.visit

    async def timed(app: AppRecord, now: datetime) -> Any:
        starts.append(time.monotonic())
        held.append(pool.held)
        return await visit(app, now)

    keeper.visit = timed  # type: ignore[method-assign]
    report = await keeper.run_once(everything=True, paced=True)
    n = len(report.visited)
    assert n >= 4
    pause = min(1.0, 2.0 * 0.5 * 2 / n)
    # Each slot's k-th visit starts after k - 1 pauses: the last one after at least
    # ceil(n / 2) - 1 of them.
    assert starts[-1] - starts[0] >= ((n + 1) // 2 - 1) * pause - 0.05
    assert held
    assert max(held) == 0


async def test_a_cycle_visits_only_apps_that_wrote_or_are_due(env: Env) -> None:
    services = env.services
    quiet, busy = env.provision(), env.provision()
    keeper = worker(services)
    await _settle(keeper)
    async with services.router.enter(busy) as conn:
        await conn.execute("INSERT INTO throttle (key) VALUES ('acct:new')")
        # Counted at once rather than when this pooled backend next idles (up to 10 s).
        await conn.execute("SELECT pg_stat_force_next_flush()")
    visited: set[str] = set()
    deadline = time.monotonic() + 30
    while busy.app_id not in visited:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.3)
        visited |= set((await keeper.run_once()).visited)
    assert quiet.app_id not in visited
    # A recorded due time that has come makes an app due without any write.
    await services.pool.execute(
        "UPDATE oneauth.retention_sweep SET next_due_at = now() - interval '1 second'"
        " WHERE app_id = $1",
        quiet.app_id,
    )
    assert quiet.app_id in (await keeper.run_once()).visited


@contextlib.contextmanager
def _registry_only_apps(settings: Settings, n: int) -> Iterator[list[str]]:
    """n apps in the registry, recorded as visited with nothing due: what 1,000 idle apps
    look like to a cycle (their schemas are never made: a cycle must not need them)."""
    tag = secrets.token_hex(3)
    with ops.connect(settings.operator_url) as conn, conn.transaction():
        rows = conn.execute(
            "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name,"
            " role_namespace, schema_version, status) SELECT 'idle-' || %(t)s || '-' || g,"
            " 'Idle ' || g, 'app_idle_' || %(t)s || '_' || g, 'oneauth_idle_' || %(t)s || '_' || g,"
            " '', %(v)s, 'active' FROM generate_series(1, %(n)s) g RETURNING app_id",
            {"t": tag, "n": n, "v": templates.latest_version("app")},
        ).fetchall()
        app_ids = [str(r[0]) for r in rows]
        conn.execute(
            "INSERT INTO oneauth.retention_sweep (app_id, changes, visited_at)"
            " SELECT a, -1, now() FROM unnest(%s::text[]) a",
            (app_ids,),
        )
    # Left in place: the module's database goes away whole (deleting them costs seconds).
    yield app_ids


async def test_an_idle_cycle_at_a_thousand_apps_enters_no_schema(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    services = env.services
    counting = CountingRouter(services.router)
    keeper = worker(services, router=counting)
    await _settle(keeper)
    # TEST_RETENTION_IDLE_APPS=10000 for the README's figure (a test switch, not a setting).
    n = int(os.environ.get("TEST_RETENTION_IDLE_APPS", "1000"))
    with _registry_only_apps(env.settings, n) as idle:
        counting.entered.clear()
        timings = []
        visited: set[str] = set()
        for _ in range(5):
            report = await keeper.run_once()
            assert report.leader
            visited |= set(report.visited)
            timings.append(report.seconds)
        # The idle apps are never entered. This module's real apps may still be: a
        # pooled backend reports its last writes up to 10 s late (PGSTAT_IDLE_INTERVAL),
        # after _settle saw a quiet cycle, and its counter then moves.
        assert not visited & set(idle)
        assert not set(counting.entered) & set(idle)
        assert set(counting.entered) <= visited
        assert report.apps >= 1000 or "TEST_RETENTION_IDLE_APPS" in os.environ
    with capsys.disabled():
        print(
            f"\nretention idle cycle at {report.apps} apps: median"
            f" {sorted(timings)[2] * 1000:.1f} ms, idle schemas entered: 0"
        )


# --- in the service -------------------------------------------------------------------


async def test_serve_runs_the_worker_in_process(env: Env) -> None:
    app = env.provision()
    async with env.services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO throttle (key, updated_at) VALUES ('acct:old', now() - interval '2 days')"
        )
    inner = create_app(
        replace(env.settings, retention="inprocess", retention_interval=1.0),
        configure_logging=False,
    )
    async with inner.router.lifespan_context(inner):
        assert inner.state.services.retention is not None
        deadline = time.monotonic() + 30
        while True:
            async with env.services.router.enter(app) as conn:
                if not await conn.fetchval("SELECT count(*) FROM throttle"):
                    break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
    # Off (the test default): no worker.
    assert env.services.retention is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ONEAUTH_RETENTION", "sometimes", "must be inprocess, off or auto"),
        ("ONEAUTH_RETENTION_INTERVAL", "0", "from 1 to 86400 seconds"),
        ("ONEAUTH_RETENTION_BATCH_SIZE", "0", "from 1 to 100000"),
        ("ONEAUTH_RETENTION_HISTORY_DAYS", "0", "from 1 to 3650"),
    ],
)
def test_retention_settings_are_checked(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"ONEAUTH_ENV": "test", variable: value})
    assert Settings.from_env({"ONEAUTH_ENV": "test"}).retention_inprocess is False
