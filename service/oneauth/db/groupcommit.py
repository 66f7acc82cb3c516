"""Group commit: concurrent requests' rows of one app written in one unit.

A client_credentials grant writes one row (its audit row, A1) and reads nothing
it has not cached, yet as a unit of its own it costs three round trips (enter,
insert, COMMIT) and a commit of Postgres' for that row alone. ``GroupCommit``
lets such requests share them: ``await writes.write(app, args)`` queues the row
and returns once the unit that carries it has committed, or raises what made
that unit fail. Durability is unchanged: no caller goes on before its own row
is committed.

Per app, one unit is in flight at a time. The first row finds none and starts
one at once (no waiting for company: a single request is not delayed); rows that
come while it runs go together in the next, up to ``max_rows`` per unit. The
unit goes through the router like any other (role and search_path of the app
whose record the rows came with, B2), and the rows go in one ``executemany``
(one round trip). Rows of two apps never share a unit.

When rows have come in while a unit ran, the next unit follows on the same
connection: its COMMIT and the next unit's enter go in one message
(``Router.chain``), then the rows' answers are released. A busy app's unit thus
costs two round trips instead of three, and no pool acquire or release, for up to
``max_chain`` units in a row.

A unit that fails fails all its rows' callers: each of them answers an error,
and none of their rows is written (the unit rolled back as a whole).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oneauth.apps.models import AppRecord
from oneauth.db.router import Router

__all__ = ["UNOPENED", "GroupCommit", "NeedsConnection"]


class NeedsConnection(Exception):
    """The work reached for the database through ``UNOPENED``: do it again in a unit."""


class _Unopened:
    """Stands in for a connection where none was opened: any use raises
    ``NeedsConnection`` before anything is sent, so work that finds its data
    cached never opens a unit, and work that does not is redone in one."""

    def __getattr__(self, name: str) -> Any:
        raise NeedsConnection(name)


UNOPENED: Any = _Unopened()


_Batch = list[tuple[Sequence[Any], asyncio.Future[None]]]


@dataclass(slots=True)
class _Lane:
    pending: _Batch = field(default_factory=list)
    running: asyncio.Task[None] | None = None


class GroupCommit:
    def __init__(
        self, router: Router, sql: str, *, max_rows: int = 64, max_chain: int = 16
    ) -> None:
        self.router = router
        self.sql = sql
        self.max_rows = max_rows
        # Units in a row on one connection while rows keep coming (Router.chain);
        # then it goes back to the pool, which may recycle it (max_queries).
        self.max_chain = max_chain
        self._lanes: dict[str, _Lane] = {}
        self.units = 0  # units committed or failed, and the rows they carried
        self.rows = 0
        self.chained = 0  # units begun on the connection of the unit before

    def _take(self, lane: _Lane) -> _Batch:
        batch = lane.pending[: self.max_rows]
        del lane.pending[: self.max_rows]
        self.units += 1
        self.rows += len(batch)
        return batch

    async def write(self, app: AppRecord, args: Sequence[Any]) -> None:
        """Write ``args`` with ``sql`` in ``app``; return once committed."""
        lane = self._lanes.get(app.app_id)
        if lane is None:
            lane = self._lanes[app.app_id] = _Lane()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lane.pending.append((args, done))
        if lane.running is None:
            lane.running = asyncio.create_task(self._drain(app, lane))
        # A caller that goes away (client disconnect) does not take the unit's
        # other rows with it: the unit runs to its end either way.
        await asyncio.shield(done)

    async def _drain(self, app: AppRecord, lane: _Lane) -> None:
        try:
            while lane.pending:
                batch: _Batch = []
                try:
                    async with self.router.enter(app) as conn:
                        for chained in range(self.max_chain):
                            if chained:
                                # Commits ``batch`` and opens the next unit.
                                await self.router.chain(conn, app)
                                _settle(batch)
                                self.chained += 1
                            batch = self._take(lane)
                            await conn.executemany(self.sql, [args for args, _ in batch])
                            if not lane.pending:
                                break
                except Exception as exc:
                    _settle(batch, exc)
                except BaseException:
                    for _, done in batch:
                        done.cancel()  # cancelled at shutdown: the rest are failed below
                    raise
                else:
                    _settle(batch)
        finally:
            # No await between the last look at ``pending`` and here: a row
            # queued after it finds ``running`` None and starts the next unit.
            for _, done in lane.pending:
                if not done.done():
                    done.set_exception(RuntimeError("group commit stopped"))
            lane.pending.clear()
            lane.running = None
            if self._lanes.get(app.app_id) is lane:
                del self._lanes[app.app_id]


def _settle(batch: _Batch, exc: BaseException | None = None) -> None:
    for _, done in batch:
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)
