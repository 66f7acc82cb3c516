"""Group commit of client_credentials audit rows (oneauth.db.groupcommit).

Concurrent grants share units, every answer comes after its own audit row is
committed, rows stay in their own app, and a unit that fails answers no token.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from apiclient import confidential_client
from oneauth import audit
from oneauth.apps.models import AppRecord
from oneauth.db.groupcommit import UNOPENED, GroupCommit, NeedsConnection
from oneauth.services import Services
from oneauth.settings import Settings


def _jti(token: str) -> str:
    body = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    jti: str = claims["jti"]
    return jti


async def _committed(services: Services, app_id: str, jti: str) -> int:
    # A new transaction: it sees committed rows only.
    async with services.router.app(app_id) as conn:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'token.issue' AND target_id = $1", jti
        )
    return n


async def _grant(http: httpx.AsyncClient, app_id: str, cid: str, secret: str) -> str:
    answer = await http.post(
        f"/apps/{app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, secret),
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def test_concurrent_grants_share_units_and_each_answer_follows_its_commit(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    a, b = provision(), provision()
    ca, cb = confidential_client(settings, a), confidential_client(settings, b)
    # Warm the caches: the first grant of a client reads it in a unit of its own.
    await _grant(client, a.app_id, *ca)
    await _grant(client, b.app_id, *cb)
    units, rows = services.audit_writes.units, services.audit_writes.rows

    async def one(app: AppRecord, credentials: tuple[str, str]) -> tuple[str, str, int]:
        token = await _grant(client, app.app_id, *credentials)
        # Read at once, as the client could act on the answer: the row is there.
        return app.app_id, _jti(token), await _committed(services, app.app_id, _jti(token))

    done = await asyncio.gather(*(one(a, ca) if i % 2 else one(b, cb) for i in range(40)))
    assert all(found == 1 for _, _, found in done), done
    assert services.audit_writes.rows - rows == 40
    assert services.audit_writes.units - units < 40  # shared units
    # Each app's rows are in its own log only (B1).
    for app_id, jti, _ in done:
        other = b.app_id if app_id == a.app_id else a.app_id
        assert await _committed(services, other, jti) == 0


class _Watched(GroupCommit):
    """A GroupCommit that tells when each unit has taken its rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.taken: asyncio.Queue[int] = asyncio.Queue()

    def _take(self, lane: Any) -> Any:
        batch = super()._take(lane)
        self.taken.put_nowait(self.units)
        return batch


async def _unit_started(writes: _Watched, units: int) -> None:
    # Until the unit has taken its rows: what is written from now on waits for the next.
    async with asyncio.timeout(10):
        while await writes.taken.get() < units:
            pass


async def test_rows_that_come_during_a_unit_follow_on_its_connection_each_after_its_commit(
    provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    writes = _Watched(services.router, audit.INSERT_SQL, max_chain=3)

    async def one(i: int) -> int:
        await writes.write(
            app, audit.row("token.issue", "success", audit.SYSTEM, target_id=f"gc-{i}")
        )
        async with services.router.app(app.app_id) as conn:  # a new transaction
            n: int = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE target_id = $1", f"gc-{i}"
            )
        return n

    # Waves of rows, each queued while the unit before it runs: units 1-3 share a
    # connection (max_chain), unit 4 starts a new one.
    tasks = [asyncio.ensure_future(one(0))]
    for unit in range(1, 4):
        await _unit_started(writes, unit)
        tasks += [asyncio.ensure_future(one(unit * 10 + i)) for i in range(3)]
    assert await asyncio.gather(*tasks) == [1] * 10
    assert (writes.units, writes.rows, writes.chained) == (4, 10, 2)
    async with services.router.app(app.app_id) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE target_id LIKE 'gc-%'") == 10
        )
    # Chained units stay in their app: another app's log has none of them (B1).
    other = provision()
    async with services.router.app(other.app_id) as conn:
        assert not await conn.fetchval("SELECT count(*) FROM audit_log WHERE target_id LIKE 'gc-%'")


async def test_a_failing_unit_fails_every_caller_and_writes_none(
    provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    writes = _Watched(services.router, audit.INSERT_SQL)
    good = [
        audit.row("token.issue", "success", audit.SYSTEM, target_id=f"gc-good-{i}")
        for i in range(5)
    ]
    bad = audit.row("token.issue", "bogus", audit.SYSTEM, target_id="gc-bad")  # type: ignore[arg-type]
    # The first write starts a unit at once; the others queue behind it and go
    # together in the second one (chained on the same connection), which the
    # CHECK on outcome refuses.
    first = asyncio.ensure_future(writes.write(app, good[0]))
    await _unit_started(writes, 1)
    rest = [asyncio.ensure_future(writes.write(app, row)) for row in (*good[1:], bad)]
    await first
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert all(isinstance(r, asyncpg.CheckViolationError) for r in results), results
    assert (writes.units, writes.chained) == (2, 1)
    async with services.router.app(app.app_id) as conn:
        written = await conn.fetch(
            "SELECT target_id FROM audit_log WHERE target_id LIKE 'gc-%' ORDER BY target_id"
        )
    assert [r["target_id"] for r in written] == ["gc-good-0"]
    # The lane is free again: the next write commits.
    await writes.write(app, audit.row("token.issue", "success", audit.SYSTEM, target_id="gc-x"))


async def test_a_grant_that_needs_the_database_is_done_in_a_unit(
    client: httpx.AsyncClient,
    provision: Callable[..., AppRecord],
    services: Services,
    settings: Settings,
) -> None:
    # A client not cached yet: the first attempt reaches for the database and is
    # redone in a unit of its own (its row written there, not by the group).
    app = provision()
    cid, secret = confidential_client(settings, app)
    services.clients.on_change(app.app_id)
    rows = services.audit_writes.rows
    token = await _grant(client, app.app_id, cid, secret)
    assert services.audit_writes.rows == rows
    assert await _committed(services, app.app_id, _jti(token)) == 1
    # Cached now: the next grant's row goes through the group commit.
    token = await _grant(client, app.app_id, cid, secret)
    assert services.audit_writes.rows == rows + 1
    assert await _committed(services, app.app_id, _jti(token)) == 1
    # A wrong secret for a cached client is refused without any unit.
    wrong = await client.post(
        f"/apps/{app.app_id}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(cid, "nope"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_the_unopened_connection_refuses_every_use() -> None:
    with pytest.raises(NeedsConnection):
        UNOPENED.fetchrow("SELECT 1")
    with pytest.raises(NeedsConnection):
        _ = UNOPENED.execute
