"""Organizations never cross the app boundary (B1, B2): the same email in apps A and
B, each with an org ``acme``, are two unrelated orgs; nothing of A's works at B."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import pytest

from oneauth import errors
from oneauth.apps.models import AppRecord
from oneauth.flows.mailing import Mailer
from oneauth.orgs import domains, invitations
from oneauth.orgs import service as orgs
from oneauth.orgs.actor import Actor
from oneauth.services import Services

from ._support import OPERATOR, make_user, unique_email


async def test_same_email_same_slug_two_unrelated_orgs(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app_a, app_b = provision(), provision()
    email = unique_email("both", domain="acme.example")
    invitee_email = unique_email("invitee")
    user_a = await make_user(services, app_a, email)
    user_b = await make_user(services, app_b, email)
    invitee_b = await make_user(services, app_b, invitee_email)
    assert user_a.id != user_b.id
    async with services.router.enter(app_a) as conn:
        acme_a = await orgs.create(
            conn, name="Acme", slug="acme", creator=user_a.id, actor=OPERATOR
        )
        await domains.add(conn, acme_a.id, "acme.example", actor=OPERATOR)
        await domains.verify(conn, acme_a.id, "acme.example", actor=OPERATOR)
        await orgs.update(conn, acme_a.id, actor=OPERATOR, join_policy="automatic")
        _, token_a = await invitations.invite(
            Mailer(services, app_a),
            conn,
            acme_a.id,
            invitee_email,
            invited_by=Actor.user(user_a.id),
        )
    async with services.router.enter(app_b) as conn:
        acme_b = await orgs.create(
            conn, name="Acme", slug="acme", creator=user_b.id, actor=OPERATOR
        )
    assert acme_a.slug == acme_b.slug == "acme"
    assert acme_a.id != acme_b.id

    macs_b = Mailer(services, app_b).macs
    async with services.router.enter(app_b) as conn:
        # A's org id is unknown at B, for reading and for every change.
        assert await orgs.get(conn, acme_a.id) is None
        assert (await orgs.get(conn, "acme")) == acme_b
        for call in (
            orgs.require_org(conn, acme_a.id),
            orgs.members(conn, acme_a.id),
            orgs.add_member(conn, acme_a.id, invitee_b.id, actor=OPERATOR),
            orgs.suspend(conn, acme_a.id, actor=OPERATOR),
            orgs.delete(conn, acme_a.id, actor=OPERATOR),
            domains.add(conn, acme_a.id, "x.example", actor=OPERATOR),
            invitations.list_open(conn, acme_a.id),
        ):
            with pytest.raises(errors.OrgNotFound):
                await call
        # A's invitation token does nothing at B (its MAC is keyed by the app).
        assert await invitations.peek(conn, macs_b, token_a) is None
        with pytest.raises(errors.InvitationInvalid):
            await invitations.accept(conn, macs_b, token_a, invitee_b)
        # A's org admin is nobody at B: their user id does not exist there.
        with pytest.raises(errors.OrgNotFound):
            await orgs.require(conn, acme_b.id, user_a.id, "org:members:write")
        with pytest.raises(errors.OrgNotFound):
            await orgs.require(conn, acme_a.id, user_a.id, "org:read")
        # A's verified domain means nothing at B.
        assert await domains.join_automatic(conn, user_b) == []
        assert [o.id for o, _ in await orgs.of_user(conn, user_b.id)] == [acme_b.id]
    # And B's role cannot even read A's tables (Postgres privileges, B2).
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with services.router.enter(app_b) as conn:
            await conn.fetch(f"SELECT id FROM {app_a.names.schema}.organizations")
    async with services.router.enter(app_a) as conn:
        assert await orgs.get(conn, acme_b.id) is None
        membership = await orgs.membership(conn, acme_a.id, user_a.id)
        assert membership is not None
        assert membership.roles == ["admin"]
    # The token still works where it belongs.
    invitee_a = await make_user(services, app_a, invitee_email)
    async with services.router.enter(app_a) as conn:
        joined = await invitations.accept(conn, Mailer(services, app_a).macs, token_a, invitee_a)
        assert joined.org_id == acme_a.id
