"""Refresh-token rotation racing with itself, replays and revocations (S1).

Two concurrent uses of one token, or a retry after a lost response, within
``REUSE_GRACE_SECONDS`` while the successor is unused: both get the same
successor and the user stays signed in; a repeat after the window, or after the
family moved on, is a replay. The
deadlock interleaving below is forced step by step (each step waits until
Postgres reports the expected lock wait), so the test fails every time the
lock order is wrong, not once in a while.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from apiclient import age_refresh_use, default_client_id, refresh, signup
from conftest import Isolated
from oneauth.apps.models import AppRecord
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.sessions import successor
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
        assert [r.status_code for r in results] == [200, 200], seen
        a, b = (r.json() for r in results)
        # One successor for both tabs (one live token in the family), two access tokens.
        assert a["refresh_token"] == b["refresh_token"], seen
        assert a["access_token"] != b["access_token"]
        after = await refresh(client, app.app_id, client_id, a["refresh_token"])
        assert after.status_code == 200, after.text
        me = await client.get(
            f"/apps/{app.app_id}/v1/me",
            headers={"authorization": f"Bearer {after.json()['access_token']}"},
        )
        assert me.status_code == 200
    assert await _reuse_events(services, app.app_id) == []


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


async def _live_tokens(services: Services, app_id: str, session_id: str) -> int:
    async with services.router.app(app_id) as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM refresh_tokens WHERE session_id = $1::uuid"
                " AND used_at IS NULL AND revoked_at IS NULL",
                session_id,
            )
        )


async def test_a_retry_after_a_lost_response_gets_the_same_successor(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    # The first answer never reached the client (it saw a timeout or a 503 after
    # the commit): it sends the same token again and is still signed in.
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "lost@example.com"))["refresh_token"]
    lost = (await refresh(client, app.app_id, client_id, raw)).json()
    retry = await refresh(client, app.app_id, client_id, raw)
    assert retry.status_code == 200, retry.text
    again = retry.json()
    assert again["refresh_token"] == lost["refresh_token"]
    assert again["scope"] == lost["scope"]
    sid = payload(again["access_token"])["sid"]
    assert sid == payload(lost["access_token"])["sid"]
    assert await _live_tokens(services, app.app_id, sid) == 1
    async with services.router.app(app.app_id) as conn:
        details = await conn.fetch(
            "SELECT details FROM audit_log WHERE event = 'token.refresh' AND outcome = 'success'"
            " ORDER BY id"
        )
    assert [json.loads(d["details"]).get("retry") for d in details] == [None, "same_successor"]
    # The family goes on from that successor; the old token is now a replay.
    third = await refresh(client, app.app_id, client_id, again["refresh_token"])
    assert third.status_code == 200, third.text
    assert (await refresh(client, app.app_id, client_id, raw)).status_code == 400
    assert await _reuse_events(services, app.app_id) == ["token.refresh_reuse"]
    assert await _live_tokens(services, app.app_id, sid) == 0


async def test_a_repeat_for_another_scope_or_from_before_kept_successors_is_refused(
    client: httpx.AsyncClient, services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    client_id = await default_client_id(client, app.app_id)
    raw = (await signup(client, app.app_id, "narrow@example.com"))["refresh_token"]
    first = (await refresh(client, app.app_id, client_id, raw)).json()
    scopes = first["scope"].split()
    assert len(scopes) > 1
    # Not a retry of that rotation: another scope. A clean error, nothing revoked.
    other = await refresh(client, app.app_id, client_id, raw, scope=scopes[0])
    assert other.status_code == 400
    assert "concurrent" in other.json()["error_description"]
    # A rotation whose successor was not kept (rows from before sql/app 0020).
    async with services.router.app(app.app_id) as conn:
        await conn.execute(
            "UPDATE refresh_tokens SET successor_enc = NULL WHERE token_hash = $1",
            sessions.hash_token(raw),
        )
    legacy = await refresh(client, app.app_id, client_id, raw)
    assert legacy.status_code == 400
    assert "concurrent" in legacy.json()["error_description"]
    # Once the family moved on, a repeat is a replay, kept successor or not.
    second = (await refresh(client, app.app_id, client_id, first["refresh_token"])).json()
    third = (await refresh(client, app.app_id, client_id, second["refresh_token"])).json()
    assert (await refresh(client, app.app_id, client_id, first["refresh_token"])).status_code == 400
    assert await _reuse_events(services, app.app_id) == ["token.refresh_reuse"]
    assert (await refresh(client, app.app_id, client_id, third["refresh_token"])).status_code == 400


def test_a_kept_successor_opens_only_with_its_presented_token() -> None:
    raw, digest = sessions.new_refresh_token()
    nxt, _ = sessions.new_refresh_token()
    kept = successor.seal(raw, digest, nxt)
    assert nxt.encode() not in kept
    assert successor.open_(raw, digest, kept) == nxt
    other, other_digest = sessions.new_refresh_token()
    assert successor.open_(other, digest, kept) is None
    assert successor.open_(raw, other_digest, kept) is None
    assert successor.open_(raw, digest, kept[:-1] + bytes([kept[-1] ^ 1])) is None
    assert successor.open_(raw, digest, b"short") is None
    # Not the hash the database keeps: the key is not computable from it.
    assert successor.open_(digest.hex(), digest, kept) is None


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
