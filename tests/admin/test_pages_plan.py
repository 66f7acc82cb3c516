"""Admin lists are keyset pages: the plan of a deep page is an index scan that
starts at the cursor, with no sort, even as a prepared statement's generic plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from oneauth.apps.models import AppRecord
from oneauth.identity import directory
from oneauth.services import Services


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", ()):
        found += nodes(child)
    return found


async def test_deep_pages_start_at_the_cursor_on_an_index(
    provision: Callable[..., AppRecord], services: Services
) -> None:
    app = provision()
    async with services.router.enter(app) as conn:
        await conn.execute(
            "INSERT INTO users (email, email_normalized, created_at)"
            " SELECT 'u' || i || '@example.com', 'u' || i || '@example.com',"
            " now() - make_interval(secs => i) FROM generate_series(1, 20000) i"
        )
        await conn.execute("ANALYZE users")
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, sql, types, args in (
            ("first", directory.PAGE_FIRST, "text, int", "NULL, 51"),
            (
                "after",
                directory.PAGE_AFTER,
                "text, timestamptz, uuid, int",
                "NULL, now() - interval '2 hours', gen_random_uuid(), 51",
            ),
            (
                "email",
                directory.PAGE_EMAIL,
                "text, text, text, text, int",
                f"'u12', 'u12' || '{directory.TOP}', 'u1234@example.com', NULL, 51",
            ),
        ):
            await conn.execute(f"PREPARE admin_page_{name} ({types}) AS {sql}")
            raw = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) EXECUTE admin_page_{name} ({args})"
            )
            plan = json.loads(raw)[0]["Plan"]
            kinds = {n["Node Type"] for n in nodes(plan)}
            assert "Sort" not in kinds, (name, kinds)
            assert "Seq Scan" not in kinds, (name, kinds)
            scanned = [n for n in nodes(plan) if n["Node Type"] == "Index Scan"]
            assert scanned, (name, kinds)
            # Starts at the cursor: reads about one page of rows, not the rows before it.
            assert scanned[0]["Actual Rows"] <= 60, (name, scanned[0]["Actual Rows"])
            assert scanned[0].get("Rows Removed by Filter", 0) < 100, (name, scanned[0])
