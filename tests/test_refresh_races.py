"""Refresh-token rotation racing with replays and revocations: no deadlock.

The interleaving below is forced step by step (each step waits until Postgres
reports the expected lock wait), so the test fails every time the lock order
is wrong, not once in a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx

from apiclient import default_client_id, signup
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.settings import Settings


async def _wait_for_lock_waiters(dsn: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(500):
            waiting = await conn.fetchval(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
            )
            if waiting >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"expected {count} backends waiting for a lock, saw {waiting}")
    finally:
        await conn.close()


async def test_replay_revocations_racing_a_late_replay_do_not_deadlock(
    client: httpx.AsyncClient,
    services: Services,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "order@example.com"))["refresh_token"]
    router = services.router
    rotated = asyncio.Event()
    go = asyncio.Event()

    async def loser() -> tuple[object, bool]:
        # Waits on the winner, then sees the token used: a replay. It holds
        # whatever that re-check locked while a later replay starts revoking.
        async with router.app(app.app_id) as conn:
            outcome = await sessions.rotate(conn, raw, client_id=client_id, idle_ttl=600)
            rotated.set()
            await go.wait()
            assert isinstance(outcome, sessions.Replayed)
            return outcome, await sessions.revoke_session(
                conn, outcome.session_id, reason="refresh_token_reuse"
            )

    async def late() -> tuple[object, bool]:
        # Arrives after the winner committed: a replay at once, and revokes.
        async with router.app(app.app_id) as conn:
            outcome = await sessions.rotate(conn, raw, client_id=client_id, idle_ttl=600)
            assert isinstance(outcome, sessions.Replayed)
            return outcome, await sessions.revoke_session(
                conn, outcome.session_id, reason="refresh_token_reuse"
            )

    async with router.app(app.app_id) as conn:
        won = await sessions.rotate(conn, raw, client_id=client_id, idle_ttl=600)
        assert isinstance(won, sessions.Rotated)
        first = asyncio.create_task(loser())
        await _wait_for_lock_waiters(settings.database_url, 1)
    await asyncio.wait_for(rotated.wait(), 5)
    second = asyncio.create_task(late())
    await _wait_for_lock_waiters(settings.database_url, 1)
    go.set()
    results = await asyncio.wait_for(asyncio.gather(first, second), 10)

    # Both are replays of the same family; exactly one of them ended it.
    assert sorted(ended for _, ended in results) == [False, True]
    async with router.app(app.app_id) as conn:
        rows = await conn.fetch(
            "SELECT revoked_at IS NOT NULL AS revoked FROM refresh_tokens WHERE session_id = $1",
            won.session.id,
        )
        assert rows
        assert all(r["revoked"] for r in rows)
        assert (
            await conn.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", won.session.id)
            == "refresh_token_reuse"
        )
