"""Rows for the org-token tests, written with plain SQL through the app context
(the org services of issue 13 are another branch's), and small token helpers."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

import httpx

from oneauth.apps.models import AppRecord
from oneauth.db import ops
from oneauth.oauth import clients
from oneauth.services import Services
from oneauth.sessions import repo as sessions
from oneauth.settings import Settings


def payload(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the tests that verify use the verifier)."""
    part = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


async def make_org(services: Services, app_id: str, slug: str, *, status: str = "active") -> str:
    org_id = "org_" + secrets.token_urlsafe(16)
    async with services.router.app(app_id) as conn:
        await conn.execute(
            "INSERT INTO organizations (id, slug, name, status) VALUES ($1, $2, $3, $4)",
            org_id,
            slug,
            slug.title(),
            status,
        )
    return org_id


async def set_org_status(services: Services, app_id: str, org_id: str, status: str) -> None:
    async with services.router.app(app_id) as conn:
        await conn.execute("UPDATE organizations SET status = $2 WHERE id = $1", org_id, status)


async def add_member(
    services: Services,
    app_id: str,
    org_id: str,
    user_id: str,
    roles: Iterable[str] = ("member",),
) -> None:
    async with services.router.app(app_id) as conn:
        await conn.execute(
            "INSERT INTO org_members (org_id, user_id, joined_via) VALUES ($1, $2, 'operator')",
            org_id,
            uuid.UUID(user_id),
        )
        await conn.execute(
            "INSERT INTO org_member_roles (org_id, user_id, org_role_id)"
            " SELECT $1, $2, id FROM org_roles WHERE org_id IS NULL AND name = ANY($3::text[])",
            org_id,
            uuid.UUID(user_id),
            list(roles),
        )


async def remove_member(services: Services, app_id: str, org_id: str, user_id: str) -> None:
    """Ends the membership only (no session revocation): what the token side must cope with."""
    async with services.router.app(app_id) as conn:
        await conn.execute(
            "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2",
            org_id,
            uuid.UUID(user_id),
        )


async def grant_role(
    services: Services,
    app_id: str,
    user_id: str,
    role: str,
    permissions: Iterable[str] = (),
) -> None:
    """Create the role (and its permissions) if missing and give it to the user."""
    perms = list(permissions)
    async with services.router.app(app_id) as conn:
        await conn.execute(
            "INSERT INTO permissions (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", perms
        )
        role_id = await conn.fetchval(
            "INSERT INTO roles (name) VALUES ($1) ON CONFLICT (name)"
            " DO UPDATE SET updated_at = now() RETURNING id",
            role,
        )
        await conn.execute(
            "INSERT INTO role_permissions (role_id, permission) SELECT $1, unnest($2::text[])"
            " ON CONFLICT DO NOTHING",
            role_id,
            perms,
        )
        await conn.execute(
            "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            uuid.UUID(user_id),
            role_id,
        )


async def revoke_role(services: Services, app_id: str, user_id: str, role: str) -> None:
    async with services.router.app(app_id) as conn:
        await conn.execute(
            "DELETE FROM user_roles WHERE user_id = $1"
            " AND role_id = (SELECT id FROM roles WHERE name = $2)",
            uuid.UUID(user_id),
            role,
        )


async def refresh_token_used(services: Services, app_id: str, raw: str) -> bool:
    async with services.router.app(app_id) as conn:
        used = await conn.fetchval(
            "SELECT used_at IS NOT NULL FROM refresh_tokens WHERE token_hash = $1",
            sessions.hash_token(raw),
        )
    assert used is not None, "no such refresh token"
    return bool(used)


async def session_org(services: Services, app_id: str, sid: str) -> str | None:
    async with services.router.app(app_id) as conn:
        value: str | None = await conn.fetchval(
            "SELECT org_id FROM sessions WHERE id = $1", uuid.UUID(sid)
        )
    return value


async def refresh(
    http: httpx.AsyncClient, app_id: str, client_id: str, token: str, **extra: str
) -> httpx.Response:
    """A refresh_token grant; ``extra``: organization_id, organization, scope."""
    return await http.post(
        f"/apps/{app_id}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client_id,
            **extra,
        },
    )


def add_scope(settings: Settings, app: AppRecord, client_id: str, scope: str) -> None:
    """Let a client ask for one more scope (the service hears the change by NOTIFY)."""
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        current = clients.get(conn, client_id)
        assert current is not None
        clients.update(conn, client_id, scopes=sorted(current.scopes | {scope}))


def org_client(settings: Settings, app: AppRecord, org_id: str) -> tuple[str, str]:
    """A confidential client_credentials client registered for ``org_id``."""
    with (
        ops.connect(settings.operator_url) as conn,
        conn.transaction(),
        ops.app_context(conn, app.names),
    ):
        made, secret = clients.create(
            conn,
            clients.ClientSpec(
                name="Acme sync",
                kind="confidential",
                grant_types=frozenset({"client_credentials"}),
                scopes=frozenset({"orders:read"}),
                org_id=org_id,
            ),
        )
    assert secret is not None
    return made.client_id, secret
