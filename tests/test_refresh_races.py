"""Refresh-token rotation racing with itself, replays and revocations (S1).

Two concurrent uses of one token: one wins, the other gets a clean error and
the user stays signed in (a benign race within ``REUSE_GRACE_SECONDS``); a
repeat after the window, or after the family moved on, is a replay. The
deadlock interleaving below is forced step by step (each step waits until
Postgres reports the expected lock wait), so the test fails every time the
lock order is wrong, not once in a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx

from apiclient import age_refresh_use, default_client_id, refresh, signup
from conftest import Isolated
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
    isolated: Isolated,
    provision: Callable[..., AppRecord],
    settings: Settings,
) -> None:
    app = provision()
    client = isolated.client
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "order@example.com"))["refresh_token"]
    router = isolated.services.router
    rotated = asyncio.Event()
    go = asyncio.Event()

    # grace_seconds=0: without the benign-race window both late uses are replays.
    async def loser() -> tuple[object, bool]:
        # Waits on the winner, then sees the token used: a replay. It holds
        # whatever that re-check locked while a later replay starts revoking.
        async with router.app(app.app_id) as conn:
            outcome = await sessions.rotate(
                conn, raw, client_id=client_id, idle_ttl=600, grace_seconds=0
            )
            rotated.set()
            await go.wait()
            assert isinstance(outcome, sessions.Replayed)
            return outcome, await sessions.revoke_session(
                conn, outcome.session_id, reason="refresh_token_reuse"
            )

    async def late() -> tuple[object, bool]:
        # Arrives after the winner committed: a replay at once, and revokes.
        async with router.app(app.app_id) as conn:
            outcome = await sessions.rotate(
                conn, raw, client_id=client_id, idle_ttl=600, grace_seconds=0
            )
            assert isinstance(outcome, sessions.Replayed)
            return outcome, await sessions.revoke_session(
                conn, outcome.session_id, reason="refresh_token_reuse"
            )

    tasks: list[asyncio.Task[tuple[object, bool]]] = []
    try:
        async with router.app(app.app_id) as conn:
            won = await sessions.rotate(conn, raw, client_id=client_id, idle_ttl=600)
            assert isinstance(won, sessions.Rotated)
            tasks.append(asyncio.create_task(loser()))
            await _wait_for_lock_waiters(settings.database_url, 1)
        await asyncio.wait_for(rotated.wait(), 5)
        tasks.append(asyncio.create_task(late()))
        await _wait_for_lock_waiters(settings.database_url, 1)
        go.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    finally:  # a failed step must not leave a transaction open for later tests
        go.set()
        for task in tasks:
            task.cancel()

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


async def _reuse_events(services: Services, app_id: str) -> list[str]:
    async with services.router.app(app_id) as conn:
        rows = await conn.fetch("SELECT event FROM audit_log WHERE event = 'token.refresh_reuse'")
    return [r["event"] for r in rows]


async def test_two_concurrent_refreshes_leave_the_user_signed_in(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    for round_ in range(20):
        raw = (await signup(client, app.app_id, f"tabs{round_}@example.com"))["refresh_token"]
        results = await asyncio.gather(*(refresh(client, app.app_id, client_id, raw) for _ in "ab"))
        seen = [(r.status_code, r.text[:200]) for r in results]
        assert sorted(r.status_code for r in results) == [200, 400], seen
        won = next(r for r in results if r.status_code == 200).json()
        lost = next(r for r in results if r.status_code == 400).json()
        assert lost["error"] == "invalid_grant", seen
        assert "concurrent" in lost["error_description"]
        # The family is intact: the winner's new refresh token works, twice over.
        after = await refresh(client, app.app_id, client_id, won["refresh_token"])
        assert after.status_code == 200, after.text
        me = await client.get(
            f"/apps/{app.app_id}/v1/me",
            headers={"authorization": f"Bearer {after.json()['access_token']}"},
        )
        assert me.status_code == 200
    assert await _reuse_events(services, app.app_id) == []


async def test_a_repeat_after_the_grace_window_is_a_replay(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "late@example.com"))["refresh_token"]
    successor = (await refresh(client, app.app_id, client_id, raw)).json()["refresh_token"]
    await age_refresh_use(services, app.app_id, raw, sessions.REUSE_GRACE_SECONDS + 1)
    replay = await refresh(client, app.app_id, client_id, raw)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert (await refresh(client, app.app_id, client_id, successor)).status_code == 400
    assert await _reuse_events(services, app.app_id) == ["token.refresh_reuse"]


async def test_a_repeat_after_the_successor_was_used_is_a_replay(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    # Within the window, but the family has moved on: the old token is stolen, not racing.
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "moved@example.com"))["refresh_token"]
    second = (await refresh(client, app.app_id, client_id, raw)).json()["refresh_token"]
    third = (await refresh(client, app.app_id, client_id, second)).json()["refresh_token"]
    assert (await refresh(client, app.app_id, client_id, raw)).status_code == 400
    assert (await refresh(client, app.app_id, client_id, third)).status_code == 400
    assert await _reuse_events(services, app.app_id) == ["token.refresh_reuse"]


async def test_the_grace_window_is_per_client_and_per_app(
    client: httpx.AsyncClient, provision: Callable[..., AppRecord]
) -> None:
    a, b = provision(), provision()
    a_client = await default_client_id(client, a.app_id)
    b_client = await default_client_id(client, b.app_id)
    raw = (await signup(client, a.app_id, "where@example.com"))["refresh_token"]
    successor = (await refresh(client, a.app_id, a_client, raw)).json()["refresh_token"]
    # Presented at app B, by B's client: unknown there, and A's family is untouched.
    elsewhere = await refresh(client, b.app_id, b_client, raw)
    assert elsewhere.status_code == 400
    assert "concurrent" not in elsewhere.json().get("error_description", "")
    assert (await refresh(client, a.app_id, a_client, successor)).status_code == 200
