"""Run a CLI operation inside one app's context (transaction, role, search_path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import asyncpg

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.cli.common import fail, load_settings
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId, quote_ident
from oneauth.db.pool import RoutedConnection
from oneauth.db.roles import UnsafeRole, check_operator_role
from oneauth.errors import ApiError
from oneauth.settings import Settings

T = TypeVar("T")


@contextmanager
def app_transaction(app_id: str) -> Iterator[tuple[lifecycle.Conn, AppRecord, Settings]]:
    """Yield a connection in the app's context; commits on success."""
    settings = load_settings()
    with ops.connect(settings.operator_url) as conn:
        app = _checked_app(conn, app_id)
        with conn.transaction():
            ops.advisory_lock(conn, f"app:{app_id}")
            with ops.app_context(conn, app.names):
                yield conn, app, settings


def _checked_app(conn: lifecycle.Conn, app_id: str) -> AppRecord:
    try:
        check_operator_role(conn)
        app = lifecycle.get(conn, app_id)
    except (UnsafeRole, InvalidAppId) as exc:
        fail(str(exc))
    if app is None or app.status == "deleted":
        fail(f"no app {app_id!r}")
    return app


@asynccontextmanager
async def async_app_transaction(
    app_id: str,
) -> AsyncIterator[tuple[asyncpg.Connection, AppRecord, Settings]]:
    """``app_transaction`` on asyncpg, for the services the HTTP API runs (``oneauth.orgs``):
    the operator role becomes the app's role with the app's schema as search_path,
    transaction-locally, as the router does; commits on success, rolls back on error."""
    settings = load_settings()
    with ops.connect(settings.operator_url) as sync:
        app = _checked_app(sync, app_id)
    conn = await asyncpg.connect(settings.operator_url, connection_class=RoutedConnection)
    conn.oneauth_entered["app"] = app  # as Router.enter does (webhooks.app_of)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                ops.LOCK_NAMESPACE,
                f"app:{app_id}",
            )
            await conn.execute(
                "SELECT set_config('role', $1, true), set_config('search_path', $2, true),"
                " set_config('oneauth.app_id', $3, true)",
                app.names.role,
                quote_ident(app.names.schema),
                app.names.app_id,
            )
            yield conn, app, settings
    finally:
        await conn.close()


def run_in_app(
    app_id: str, work: Callable[[asyncpg.Connection, AppRecord, Settings], Awaitable[T]]
) -> T:
    """Run ``work`` in one ``async_app_transaction``; a service's refusal (an
    ``ApiError``) rolls it back and becomes ``error: <detail> (<code>)``."""

    async def main() -> T:
        async with async_app_transaction(app_id) as (conn, app, settings):
            return await work(conn, app, settings)

    try:
        return asyncio.run(main())
    except ApiError as exc:
        field = exc.extra.get("field")
        fail(f"{exc.detail} ({exc.code}{', field ' + str(field) if field else ''})")
    except asyncpg.PostgresError as exc:
        fail(f"database: {str(exc).strip()}")
    except OSError as exc:
        fail(f"database unreachable: {exc}")
