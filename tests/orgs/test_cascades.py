"""What ends with an org, a membership or a user: sessions scoped to the org, rows by FK."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

import asyncpg

from oneauth.apps.models import AppRecord
from oneauth.orgs import roles
from oneauth.orgs import service as orgs
from oneauth.services import Services

from ._support import OPERATOR, make_user


async def _session(conn: asyncpg.Connection, user_id: uuid.UUID, org_id: str | None) -> uuid.UUID:
    """A session (refresh family with one live token) scoped to ``org_id``."""
    client_id = await conn.fetchval("SELECT client_id FROM clients ORDER BY created_at LIMIT 1")
    session_id = await conn.fetchval(
        "INSERT INTO sessions (user_id, client_id, amr, auth_time, expires_at, org_id)"
        " VALUES ($1, $2, '{pwd}', now(), now() + interval '1 day', $3) RETURNING id",
        user_id,
        client_id,
        org_id,
    )
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, client_id, scope, expires_at)"
        " VALUES ($1, $2, $3, 'openid', now() + interval '1 day')",
        secrets.token_bytes(32),
        session_id,
        client_id,
    )
    assert isinstance(session_id, uuid.UUID)
    return session_id


async def _state(conn: asyncpg.Connection, session_id: uuid.UUID) -> tuple[str | None, int]:
    reason = await conn.fetchval("SELECT revoked_reason FROM sessions WHERE id = $1", session_id)
    live = await conn.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE session_id = $1 AND revoked_at IS NULL",
        session_id,
    )
    return reason, int(live)


async def test_removing_a_member_ends_only_their_sessions_for_that_org(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    alice, bob = await make_user(services, app), await make_user(services, app)
    async with services.router.enter(app) as conn:
        x = await orgs.create(conn, name="X", actor=OPERATOR)
        y = await orgs.create(conn, name="Y", actor=OPERATOR)
        for org in (x, y):
            for user in (alice, bob):
                await orgs.add_member(conn, org.id, user.id, actor=OPERATOR)
        alice_x = await _session(conn, alice.id, x.id)
        alice_y = await _session(conn, alice.id, y.id)
        alice_plain = await _session(conn, alice.id, None)
        bob_x = await _session(conn, bob.id, x.id)
    async with services.router.enter(app) as conn:
        assert await orgs.remove_member(conn, x.id, alice.id, actor=OPERATOR) == 1
        assert await _state(conn, alice_x) == ("org_membership_ended", 0)
        for untouched in (alice_y, alice_plain, bob_x):
            assert await _state(conn, untouched) == (None, 1)


async def test_deleting_an_org_ends_its_sessions_in_the_same_transaction(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    alice = await make_user(services, app)
    async with services.router.enter(app) as conn:
        x = await orgs.create(conn, name="X", creator=alice.id, actor=OPERATOR)
        y = await orgs.create(conn, name="Y", creator=alice.id, actor=OPERATOR)
        await orgs.create_custom_role(conn, x.id, "billing", ["org:read"], actor=OPERATOR)
        in_x = [await _session(conn, alice.id, x.id) for _ in range(2)]
        in_y = await _session(conn, alice.id, y.id)
    async with services.router.enter(app) as conn:
        assert await orgs.delete(conn, x.id, actor=OPERATOR) == 2
        for session_id in in_x:
            assert await _state(conn, session_id) == ("org_deleted", 0)
            assert (
                await conn.fetchval("SELECT org_id FROM sessions WHERE id = $1", session_id) is None
            )
        assert await _state(conn, in_y) == (None, 1)
        assert await orgs.get(conn, x.id) is None
        for table in ("org_members", "org_member_roles", "org_roles"):
            count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE org_id = $1", x.id)
            assert count == 0, table
        assert (await orgs.membership(conn, y.id, alice.id)) is not None
        # The template roles stay: other orgs use them.
        assert [r.name for r in await orgs.org_roles(conn, None)] == ["admin", "member"]


async def test_deleting_a_user_removes_memberships_and_role_grants(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    alice, bob = await make_user(services, app), await make_user(services, app)
    async with services.router.enter(app) as conn:
        x = await orgs.create(conn, name="X", creator=alice.id, actor=OPERATOR)
        await orgs.add_member(conn, x.id, bob.id, actor=OPERATOR)
        await roles.create_role(conn, "staff", permissions=["a:b"], actor=OPERATOR)
        await roles.grant(conn, alice.id, "staff", actor=OPERATOR)
    async with services.router.enter(app) as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", alice.id)
        assert await orgs.membership(conn, x.id, alice.id) is None
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM org_member_roles WHERE user_id = $1", alice.id
            )
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM user_roles WHERE user_id = $1", alice.id) == 0
        )
        listed, _ = await orgs.members(conn, x.id)
        assert [m.user_id for m in listed] == [bob.id]
