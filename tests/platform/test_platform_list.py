"""The platform API's app list: keyset pages, prefix search, ONE indexed query (issue 15).

These tests run on a database of their own holding registry rows WITHOUT schemas
or roles: the list reads the registry (``oneauth.apps``) and nothing else, and
provisioning hundreds (or 10,000) real apps would cost minutes of the shared
machine for no extra coverage of the list. A database of their own, because a
registry row without a schema would fail ``migrate`` in the shared one.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from admin._support import bearer
from conftest import ScratchDatabase
from oneauth.apps.migrate import migrate_all
from oneauth.asgi import create_app
from oneauth.db import ops, templates
from oneauth.platform import bootstrap
from oneauth.platform.repo import list_query
from oneauth.settings import Settings
from platformkit import platform_client, platform_token

N = 300  # listed apps: "list-0000" ...; every 7th suspended, every 11th deleted
NAMES = ("Acme", "Bolt", "Cinder", "Delta Ärger")  # display name: f"{NAMES[n % 4]} {n}"


@dataclass
class Fleet:
    db: ScratchDatabase
    settings: Settings
    http: httpx.AsyncClient
    token: str


def _insert(conn: Any, first: int, count: int, prefix: str) -> None:
    """Registry rows only (see the module's docstring), in one statement."""
    latest = templates.latest_version("app")
    conn.execute(
        "INSERT INTO oneauth.apps (app_id, display_name, schema_name, role_name,"
        " role_namespace, schema_version, status)"
        " SELECT %(p)s || lpad(n::text, 5, '0'), (ARRAY['Acme','Bolt','Cinder','Delta Ärger'])"
        "[n %% 4 + 1] || ' ' || n, 'app_fake_' || %(u)s || n, 'oneauth_fake_' || %(u)s || n, '',"
        " %(v)s, CASE WHEN n %% 11 = 0 THEN 'deleted' WHEN n %% 7 = 0 THEN 'suspended'"
        " ELSE 'active' END FROM generate_series(%(a)s::int, %(b)s::int) AS n",
        {
            "p": prefix,
            "u": prefix.replace("-", "_"),
            "v": latest,
            "a": first,
            "b": first + count - 1,
        },
    )


@pytest.fixture(scope="module")
async def fleet(make_database: Callable[[str], ScratchDatabase]) -> AsyncIterator[Fleet]:
    db = make_database("plist")
    migrate_all(db.dsn)
    settings = db.settings(pool_min_size=1, pool_max_size=4)
    with ops.connect(db.dsn) as conn:
        bootstrap.init(conn, settings)
        with conn.transaction():
            _insert(conn, 0, N, "list-")
    client_id, secret = platform_client(settings, ["platform:apps:read"])
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            token = await platform_token(http, client_id, secret)
            yield Fleet(db, settings, http, token)


def _expected(status: str | None = None) -> list[str]:
    def state(n: int) -> str:
        return "deleted" if n % 11 == 0 else "suspended" if n % 7 == 0 else "active"

    return [
        f"list-{n:05d}"
        for n in range(N)
        if (status == "all") or (state(n) == status if status else state(n) != "deleted")
    ]


async def _all_pages(fleet: Fleet, params: dict[str, str], limit: int = 50) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, "limit": str(limit)}
        if cursor:
            query["cursor"] = cursor
        r = await fleet.http.get("/admin/v1/apps", params=query, headers=bearer(fleet.token))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        seen += [a["app_id"] for a in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the pages never ended")


async def test_pages_cover_every_app_once_in_order(fleet: Fleet) -> None:
    listed = await _all_pages(fleet, {}, limit=37)
    assert listed == _expected()  # in app_id order, none twice, none missing
    assert "platform" not in listed  # the control plane is not one of the apps
    assert await _all_pages(fleet, {"status": "suspended"}) == _expected("suspended")
    assert await _all_pages(fleet, {"status": "all"}, limit=200) == _expected("all")


async def test_prefix_search_on_id_and_name(fleet: Fleet) -> None:
    by_id = await _all_pages(fleet, {"q": "list-001"}, limit=4)
    assert by_id == [a for a in _expected() if a.startswith("list-001")]
    # The display name, case-insensitively; "Acme" is every 4th app.
    by_name = await _all_pages(fleet, {"q": "aCmE"}, limit=20)
    assert by_name == [a for a in _expected() if int(a[5:]) % 4 == 0]
    assert await _all_pages(fleet, {"q": "acme 12"}) == [
        a for a in _expected() if int(a[5:]) % 4 == 0 and str(int(a[5:])).startswith("12")
    ]
    # q goes through the database's own lower(), as the indexed names do, so they
    # agree under any locale (under a C locale, lower() folds ASCII letters only).
    umlaut = await _all_pages(fleet, {"q": "DELTA Ä"})
    assert umlaut == [a for a in _expected() if int(a[5:]) % 4 == 3]
    assert await _all_pages(fleet, {"q": "zzz"}) == []
    # Not a substring search: "cme" is in "Acme" but starts nothing.
    assert await _all_pages(fleet, {"q": "cme"}) == []
    # Wildcards are text here, not patterns.
    assert await _all_pages(fleet, {"q": "%"}) == []
    assert await _all_pages(fleet, {"q": "list_"}) == []


def _plan(conn: Any, sql: str, args: list[Any], mode: str) -> tuple[dict[str, Any], float]:
    """The plan of the prepared statement, as asyncpg runs it after a few calls: generic
    (``force_generic_plan``) unless the repository asks for a custom one (a search);
    with EXPLAIN ANALYZE: (plan, execution ms)."""
    conn.execute("DEALLOCATE ALL")
    types = [
        "text[]" if isinstance(a, list) else "int" if isinstance(a, int) else "text" for a in args
    ]
    conn.execute(f"PREPARE page({', '.join(types)}) AS {sql}")
    with conn.transaction():
        conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        placeholders = ", ".join(f"%s::{t}" for t in types)
        # EXPLAIN takes no bound parameters: the values are quoted client-side.
        row = (
            psycopg.ClientCursor(conn)
            .execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page({placeholders})", args)
            .fetchone()
        )
    assert row is not None
    doc = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return doc[0]["Plan"], float(doc[0]["Execution Time"])


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_the_list_is_one_indexed_query_at_10000_apps(fleet: Fleet) -> None:
    with ops.connect(fleet.db.dsn) as conn:
        with conn.transaction():
            _insert(conn, 0, 10_000, "many-")
        conn.execute("ANALYZE oneauth.apps")
        cases: dict[str, dict[str, str | None]] = {
            "first page": {"q": None, "status": None, "after": None},
            "after a cursor": {"q": None, "status": None, "after": "many-05000"},
            "id prefix": {"q": "many-012", "status": None, "after": None},
            "name prefix": {"q": "bolt 77", "status": None, "after": None},
            "one letter": {"q": "c", "status": "active", "after": None},
        }
        figures = {}
        for name, case in cases.items():
            sql, args = list_query(limit=51, **case)
            mode = "force_generic_plan" if case["q"] is None else "force_custom_plan"
            plan, ms = _plan(conn, sql, args, mode)
            scans = {n["Node Type"] for n in _nodes(plan)}
            indexes = {n.get("Index Name") for n in _nodes(plan)} - {None}
            assert "Seq Scan" not in scans, (name, scans)
            # Never a walk over the whole registry: the rows read and thrown away
            # stay near the page (plus, for a search, its matches).
            wasted = sum(
                n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0)
                for n in _nodes(plan)
            )
            assert wasted < 3000, (name, wasted, plan)
            assert indexes & {"apps_app_id_pattern_idx", "apps_display_name_pattern_idx"}, (
                name,
                indexes,
            )
            figures[name] = ms
    # Through the API, on 10,300 apps: the first page and a search, timed (medians).
    timings: dict[str, float] = {}
    for label, params in (("api first page", {}), ("api search", {"q": "many-09"})):
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            r = await fleet.http.get("/admin/v1/apps", params=params, headers=bearer(fleet.token))
            samples.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200
        timings[label] = sorted(samples)[len(samples) // 2]
    print("\nplatform app list at 10,300 apps (ms):", {**figures, **timings})
    for label, ms in timings.items():
        assert ms < 300, (label, ms)  # the console's budget, with room on a busy machine
