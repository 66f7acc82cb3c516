"""Operators, their console grants and the platform API's clients (synchronous, psycopg).

Operators are users of the platform app; which apps each may administer in the
console is a row of ``oneauth.console_grants`` (app_id NULL = every app). The
platform API's callers are client-credentials clients of the platform app
whose scopes are platform scopes only. Every change is audited in the platform
app's audit_log, the control-plane audit log (issue 15).

The connection is the operator role's, in a transaction; the platform app's
context (role, search_path) is entered only around the statements on its own
tables, since the app role cannot read the control schema.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from oneauth import audit
from oneauth.admin.scopes import PLATFORM_SCOPES
from oneauth.apps import lifecycle
from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.db.naming import PLATFORM_APP_ID, is_reserved_app_id, validate_app_id
from oneauth.identity.users import normalize_email
from oneauth.oauth import clients

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")


class PlatformError(ValueError):
    """A request the control plane refuses; the message says why."""


@dataclass(frozen=True)
class Operator:
    sub: str
    email: str
    status: str
    grants: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"sub": self.sub, "email": self.email, "status": self.status, "grants": self.grants}


def platform_app(conn: lifecycle.Conn) -> AppRecord:
    app = lifecycle.get(conn, PLATFORM_APP_ID)
    if app is None or app.status != "active":
        raise PlatformError("no platform app: run `oneauth platform init` first")
    return app


def _audit(
    conn: lifecycle.Conn,
    event: str,
    *,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """A control-plane audit row; the caller is in the platform app's context."""
    audit.record_sync(
        conn,
        event,
        "success",
        audit.SYSTEM,
        app_id=PLATFORM_APP_ID,
        actor_type="operator",
        target_type=target_type,
        target_id=target_id,
        details=details or {},
    )


# --- operators ---------------------------------------------------------------------------


def create_operator(
    conn: lifecycle.Conn, email: str, password_hash: str | None
) -> tuple[str, bool]:
    """(sub, created): a user of the platform app with a verified email, or the existing one."""
    app = platform_app(conn)
    key = normalize_email(email)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{PLATFORM_APP_ID}")
        with ops.app_context(conn, app.names):
            found = conn.execute("SELECT id FROM users WHERE email_normalized = %s", (key,))
            row = found.fetchone()
            if row is not None:
                return str(row[0]), False
            row = conn.execute(
                "INSERT INTO users (email, email_normalized, email_verified, password_hash,"
                " password_changed_at) VALUES (%s, %s, true, %s,"
                " CASE WHEN %s::text IS NULL THEN NULL ELSE now() END) RETURNING id",
                (email.strip(), key, password_hash, password_hash),
            ).fetchone()
            assert row is not None
            sub = str(row[0])
            _audit(
                conn,
                "platform.operator.create",
                target_type="user",
                target_id=sub,
                details={"password": password_hash is not None},
            )
    return sub, True


def _operator_sub(conn: lifecycle.Conn, app: AppRecord, email: str) -> str:
    with ops.app_context(conn, app.names):
        row = conn.execute(
            "SELECT id FROM users WHERE email_normalized = %s AND status <> 'deleted'",
            (normalize_email(email),),
        ).fetchone()
    if row is None:
        raise PlatformError(f"no operator {email!r}: create one with `platform operators create`")
    return str(row[0])


def _grant_target(conn: lifecycle.Conn, app_id: str | None) -> None:
    if app_id is None:
        return
    validate_app_id(app_id)
    target = lifecycle.get(conn, app_id)
    if is_reserved_app_id(app_id) or target is None or target.status == "deleted":
        raise PlatformError(f"no app {app_id!r} to grant")


def grant(conn: lifecycle.Conn, email: str, app_id: str | None, role: str) -> bool:
    """Give (or change) the operator's role on one app or, app_id None, on every app.

    Returns whether anything changed."""
    if role not in ROLES:
        raise PlatformError("role must be viewer or admin")
    app = platform_app(conn)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{PLATFORM_APP_ID}")
        _grant_target(conn, app_id)
        sub = _operator_sub(conn, app, email)
        before = conn.execute(
            "SELECT role FROM oneauth.console_grants WHERE operator_sub = %s"
            " AND app_id IS NOT DISTINCT FROM %s FOR UPDATE",
            (sub, app_id),
        ).fetchone()
        if before is not None and before[0] == role:
            return False
        if before is None:
            conn.execute(
                "INSERT INTO oneauth.console_grants (operator_sub, app_id, role)"
                " VALUES (%s, %s, %s)",
                (sub, app_id, role),
            )
        else:
            conn.execute(
                "UPDATE oneauth.console_grants SET role = %s WHERE operator_sub = %s"
                " AND app_id IS NOT DISTINCT FROM %s",
                (role, sub, app_id),
            )
        with ops.app_context(conn, app.names):
            _audit(
                conn,
                "platform.operator.grant",
                target_type="user",
                target_id=sub,
                details={
                    "app_id": app_id,
                    "all_apps": app_id is None,
                    "role": role,
                    "previous": None if before is None else before[0],
                },
            )
    return True


def revoke(conn: lifecycle.Conn, email: str, app_id: str | None) -> bool:
    """Take the operator's grant on one app (or the all-apps grant); whether one existed."""
    app = platform_app(conn)
    if app_id is not None:
        validate_app_id(app_id)
    with conn.transaction():
        ops.advisory_lock(conn, f"app:{PLATFORM_APP_ID}")
        sub = _operator_sub(conn, app, email)
        gone = conn.execute(
            "DELETE FROM oneauth.console_grants WHERE operator_sub = %s"
            " AND app_id IS NOT DISTINCT FROM %s RETURNING role",
            (sub, app_id),
        ).fetchone()
        if gone is None:
            return False
        with ops.app_context(conn, app.names):
            _audit(
                conn,
                "platform.operator.revoke",
                target_type="user",
                target_id=sub,
                details={"app_id": app_id, "all_apps": app_id is None, "role": gone[0]},
            )
    return True


def list_operators(conn: lifecycle.Conn) -> list[Operator]:
    app = platform_app(conn)
    with conn.transaction():
        grants: dict[str, list[dict[str, Any]]] = {}
        for sub, app_id, role in conn.execute(
            "SELECT operator_sub, app_id, role FROM oneauth.console_grants"
            " ORDER BY operator_sub, app_id NULLS FIRST"
        ):
            grants.setdefault(str(sub), []).append({"app_id": app_id, "role": role})
        with ops.app_context(conn, app.names):
            rows = conn.execute(
                "SELECT id, email, status FROM users WHERE status <> 'deleted'"
                " ORDER BY email_normalized"
            ).fetchall()
    return [Operator(str(r[0]), r[1], r[2], grants.get(str(r[0]), [])) for r in rows]


def grants_of(conn: lifecycle.Conn, operator_sub: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT app_id, role FROM oneauth.console_grants WHERE operator_sub = %s"
        " ORDER BY app_id NULLS FIRST",
        (uuid.UUID(operator_sub),),
    )
    return [{"app_id": a, "role": r} for a, r in rows]


# --- platform API clients ----------------------------------------------------------------


def parse_scopes(scopes: list[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    unknown = sorted(wanted - PLATFORM_SCOPES)
    if unknown or not wanted:
        raise PlatformError(
            f"platform clients take platform scopes only ({', '.join(sorted(PLATFORM_SCOPES))})"
            + (f"; not {', '.join(unknown)}" if unknown else "")
        )
    return wanted


def create_client(
    conn: lifecycle.Conn, name: str, scopes: list[str], *, access_token_ttl: int | None = None
) -> tuple[clients.Client, str]:
    """A confidential client_credentials client of the platform app; its secret, once."""
    wanted = parse_scopes(scopes)
    app = platform_app(conn)
    spec = clients.ClientSpec(
        name=name,
        kind="confidential",
        grant_types=frozenset({"client_credentials"}),
        scopes=wanted,
        access_token_ttl=access_token_ttl,
    )
    with conn.transaction(), ops.app_context(conn, app.names):
        try:
            client, secret = clients.create(conn, spec)
        except clients.ClientError as exc:
            raise PlatformError(str(exc)) from None
        _audit(
            conn,
            "platform.client.create",
            target_type="client",
            target_id=client.client_id,
            details={"name": client.name, "scopes": sorted(wanted)},
        )
    assert secret is not None
    return client, secret


def list_clients(conn: lifecycle.Conn) -> list[clients.Client]:
    """The platform API's clients (client_credentials), the console's client left out."""
    app = platform_app(conn)
    with conn.transaction(), ops.app_context(conn, app.names):
        found = clients.list_all(conn)
    return [c for c in found if "client_credentials" in c.grant_types]


def disable_client(conn: lifecycle.Conn, client_id: str) -> clients.Client:
    """Refuse the client's secret and tokens from now on (the client cache drops it on NOTIFY)."""
    app = platform_app(conn)
    with conn.transaction(), ops.app_context(conn, app.names):
        current = clients.get(conn, client_id)
        if current is None or "client_credentials" not in current.grant_types:
            raise PlatformError(f"no platform client {client_id!r}")
        updated = clients.update(conn, client_id, disabled=True)
        if not current.disabled:
            _audit(conn, "platform.client.disable", target_type="client", target_id=client_id)
    return updated
