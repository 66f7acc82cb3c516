"""What an operator may open: the picker's query and the per-app grant check.

Both read ``oneauth.console_grants`` (made by ``oneauth platform operators
grant``) on every request, so a revoked grant takes effect at the next page.
The picker is ONE query per page however many apps there are (issue 15: never
one request per app): the operator's grants, the page of apps (keyset on
``app_id``, prefix search on the id or the display name through the
pattern-ops indexes of ``sql/control/0004_platform.sql``) and the recent apps.
The platform app itself is never listed: it is administered with the CLI.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import asyncpg

from oneauth.platform import PLATFORM_APP_ID

Role = Literal["viewer", "admin"]
RECENT = 5  # recent apps shown above the list
RECENT_KEPT = 20  # rows kept per operator


@dataclass(frozen=True, slots=True)
class PickerApp:
    app_id: str
    display_name: str
    status: str
    role: Role


@dataclass(frozen=True, slots=True)
class PickerPage:
    apps: list[PickerApp]
    recent: list[PickerApp]
    next_after: str | None


def like_prefix(text: str) -> str:
    """``text`` as a LIKE prefix pattern with its wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# The strongest role per app: an app grant and an all-apps grant may both apply.
_PICKER_SQL = """
WITH g AS (
    SELECT app_id, CASE role WHEN 'admin' THEN 2 ELSE 1 END AS rank
      FROM oneauth.console_grants WHERE operator_sub = $1
), everything AS (
    SELECT max(rank) AS rank FROM g WHERE app_id IS NULL
), ga AS (
    SELECT app_id, max(rank) AS rank FROM g WHERE app_id IS NOT NULL GROUP BY app_id
), page AS (
    SELECT a.app_id, a.display_name, a.status,
           greatest((SELECT rank FROM everything), ga.rank) AS rank
      FROM oneauth.apps a LEFT JOIN ga USING (app_id)
     WHERE a.status <> 'deleted' AND a.app_id <> $5
       AND ((SELECT rank FROM everything) IS NOT NULL OR ga.rank IS NOT NULL)
       AND ($2::text IS NULL
            OR a.app_id LIKE $2 ESCAPE '\\'
            OR lower(a.display_name) LIKE lower($2) ESCAPE '\\')
       AND ($3::text IS NULL OR a.app_id > $3)
     ORDER BY a.app_id
     LIMIT $4 + 1
), recent AS (
    SELECT a.app_id, a.display_name, a.status, r.used_at,
           greatest((SELECT rank FROM everything), ga.rank) AS rank
      FROM oneauth.console_recent_apps r
      JOIN oneauth.apps a USING (app_id)
      LEFT JOIN ga USING (app_id)
     WHERE r.operator_sub = $1 AND a.status <> 'deleted' AND a.app_id <> $5
       AND ((SELECT rank FROM everything) IS NOT NULL OR ga.rank IS NOT NULL)
     ORDER BY r.used_at DESC
     LIMIT $6
)
SELECT 'page' AS kind, app_id, display_name, status, rank,
       row_number() OVER (ORDER BY app_id) AS n FROM page
UNION ALL
SELECT 'recent', app_id, display_name, status, rank,
       row_number() OVER (ORDER BY used_at DESC) FROM recent
ORDER BY kind, n
"""


def _role(rank: int) -> Role:
    return "admin" if rank >= 2 else "viewer"


async def picker(
    conn: asyncpg.Connection,
    operator_sub: uuid.UUID,
    *,
    search: str | None,
    after: str | None,
    limit: int,
) -> PickerPage:
    """One page of the apps the operator may open, and their recent apps; ONE query."""
    rows = await conn.fetch(
        _PICKER_SQL,
        operator_sub,
        like_prefix(search) if search else None,
        after,
        limit,
        PLATFORM_APP_ID,
        RECENT,
    )
    apps: list[PickerApp] = []
    recent: list[PickerApp] = []
    for row in rows:
        item = PickerApp(row["app_id"], row["display_name"], row["status"], _role(row["rank"]))
        (apps if row["kind"] == "page" else recent).append(item)
    next_after = None
    if len(apps) > limit:
        apps = apps[:limit]
        next_after = apps[-1].app_id
    return PickerPage(apps, recent, next_after)


_GRANT_SQL = """
SELECT a.app_id, a.display_name, a.status,
       (SELECT max(CASE g.role WHEN 'admin' THEN 2 ELSE 1 END)
          FROM oneauth.console_grants g
         WHERE g.operator_sub = $1 AND (g.app_id IS NULL OR g.app_id = a.app_id)) AS rank
  FROM oneauth.apps a
 WHERE a.app_id = $2 AND a.status <> 'deleted' AND a.app_id <> $3
"""


async def grant_for(
    conn: asyncpg.Connection, operator_sub: uuid.UUID, app_id: str
) -> PickerApp | None:
    """The app and the operator's role there; None when the app is unknown OR not
    granted (one answer for both: an operator learns nothing of other apps)."""
    row = await conn.fetchrow(_GRANT_SQL, operator_sub, app_id, PLATFORM_APP_ID)
    if row is None or row["rank"] is None:
        return None
    return PickerApp(row["app_id"], row["display_name"], row["status"], _role(row["rank"]))


async def remember(conn: asyncpg.Connection, operator_sub: uuid.UUID, app_id: str) -> None:
    """Record an opened app among the operator's recent apps (a few rows kept)."""
    await conn.execute(
        "INSERT INTO oneauth.console_recent_apps (operator_sub, app_id) VALUES ($1, $2)"
        " ON CONFLICT (operator_sub, app_id) DO UPDATE SET used_at = now()",
        operator_sub,
        app_id,
    )
    await conn.execute(
        "DELETE FROM oneauth.console_recent_apps WHERE operator_sub = $1 AND app_id NOT IN"
        " (SELECT app_id FROM oneauth.console_recent_apps WHERE operator_sub = $1"
        "  ORDER BY used_at DESC LIMIT $2)",
        operator_sub,
        RECENT_KEPT,
    )
