"""Run a CLI operation inside one app's context (transaction, role, search_path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.cli.common import fail, load_settings
from oneauth.db import ops
from oneauth.db.naming import InvalidAppId
from oneauth.db.roles import UnsafeRole, check_operator_role
from oneauth.settings import Settings


@contextmanager
def app_transaction(app_id: str) -> Iterator[tuple[lifecycle.Conn, AppRecord, Settings]]:
    """Yield a connection in the app's context; commits on success."""
    settings = load_settings()
    with ops.connect(settings.operator_url) as conn:
        try:
            check_operator_role(conn)
            app = lifecycle.get(conn, app_id)
        except (UnsafeRole, InvalidAppId) as exc:
            fail(str(exc))
        if app is None or app.status == "deleted":
            fail(f"no app {app_id!r}")
        with conn.transaction():
            ops.advisory_lock(conn, f"app:{app_id}")
            with ops.app_context(conn, app.names):
                yield conn, app, settings
