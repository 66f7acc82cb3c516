"""Invitations: mailed, single use (also under concurrency), expiring, revocable,
only for the exact verified address, and only in their own app."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import Isolated
from oneauth import audit, errors
from oneauth.apps.models import AppRecord
from oneauth.flows.mailing import Mailer
from oneauth.identity import addresses
from oneauth.identity.users import normalize_email
from oneauth.mail.backends import MemoryBackend
from oneauth.orgs import invitations
from oneauth.orgs import service as orgs
from oneauth.services import Services

from ._support import OPERATOR, Actor, make_user, unique_email


def _token(text: str) -> str:
    match = re.search(r"https?://\S+/invitations/accept\?token=[A-Za-z0-9_-]+", text)
    assert match, text
    return parse_qs(urlsplit(match.group(0)).query)["token"][0]


async def _org_with_admin(
    services: Services, app: AppRecord, name: str = "Acme"
) -> tuple[orgs.Org, Any]:
    admin = await make_user(services, app)
    async with services.router.enter(app) as conn:
        org = await orgs.create(conn, name=name, creator=admin.id, actor=OPERATOR)
    return org, admin


async def test_invite_mails_a_link_and_accepting_joins_with_the_roles(
    services: Services,
    provision: Callable[..., AppRecord],
    mailbox: MemoryBackend,
    deliver: Callable[[AppRecord], Any],
) -> None:
    app = provision(name="Shop")
    org, admin = await _org_with_admin(services, app)
    email = unique_email("Invitee")
    async with services.router.enter(app) as conn:
        await orgs.update(conn, org.id, actor=OPERATOR, branding={"display_name": "Acme Corp"})
        invitation, token = await invitations.invite(
            Mailer(services, app),
            conn,
            org.id,
            email,
            roles=["admin"],
            invited_by=Actor.user(admin.id),
        )
        stored = await conn.fetchrow(
            "SELECT token_hash, invited_by FROM org_invitations WHERE id = $1", invitation.id
        )
    assert invitation.state == "open"
    assert invitation.roles == ["admin"]
    assert token.encode() not in bytes(stored["token_hash"])
    assert stored["invited_by"] == f"user:{admin.id}"
    await deliver(app)
    [sent] = mailbox.to(email)
    assert "Acme Corp" in str(sent.message["Subject"])
    assert "Shop" in str(sent.message["Subject"])
    assert f"/apps/{app.app_id}/invitations/accept?token=" in sent.text
    assert _token(sent.text) == token
    assert "Join Acme Corp" in sent.html

    async with services.router.enter(app) as conn:
        preview = await invitations.peek(conn, Mailer(services, app).macs, token)
        assert preview is not None
        assert preview.state == "open"
        assert preview.org_name == "Acme Corp"
        assert preview.email_masked.startswith("I***@")
    user = await make_user(services, app, email.upper())
    async with services.router.enter(app) as conn:
        joined = await invitations.accept(conn, Mailer(services, app).macs, token, user)
        assert joined.roles == ["admin"]
        assert joined.joined_via == "invitation"
        preview = await invitations.peek(conn, Mailer(services, app).macs, token)
        assert preview is not None
        assert preview.state == "accepted"
        assert await invitations.list_open(conn, org.id) == []
        [closed] = await invitations.list_open(conn, org.id, include_closed=True)
        assert closed.accepted_by == user.id
    async with services.router.enter(app) as conn:
        with pytest.raises(errors.InvitationInvalid):  # reuse
            await invitations.accept(conn, Mailer(services, app).macs, token, user)


async def test_wrong_email_and_unverified_email_are_refused_without_using_it_up(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    org, _ = await _org_with_admin(services, app)
    email = unique_email()
    macs = Mailer(services, app).macs
    async with services.router.enter(app) as conn:
        _, token = await invitations.invite(
            Mailer(services, app), conn, org.id, email, invited_by=OPERATOR
        )
    other = await make_user(services, app)
    invitee = await make_user(services, app, email, verified=False)
    async with services.router.enter(app) as conn:
        with pytest.raises(errors.InvitationEmailMismatch) as mismatch:
            await invitations.accept(conn, macs, token, other)
    assert mismatch.value.code == "invitation_email_mismatch"
    async with services.router.enter(app) as conn:
        with pytest.raises(errors.EmailNotVerified) as unverified:
            await invitations.accept(conn, macs, token, invitee)
    assert unverified.value.status == 403
    # The mailbox answers (the real proof path), then the same token works.
    async with services.router.enter(app) as conn:
        await addresses.mailbox_proven(
            conn, invitee.id, normalize_email(email), method="verify_link", meta=audit.SYSTEM
        )
    async with services.router.enter(app) as conn:
        joined = await invitations.accept(conn, macs, token, invitee.id)
    assert joined.roles == ["member"]  # no roles named: the default role


async def test_expired_revoked_replaced_and_garbage_tokens_are_invalid(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    org, _ = await _org_with_admin(services, app)
    mailer = Mailer(services, app)
    email = unique_email()
    user = await make_user(services, app, email)
    async with services.router.enter(app) as conn:
        expired, expired_token = await invitations.invite(
            mailer, conn, org.id, email, invited_by=OPERATOR
        )
        await conn.execute(
            "UPDATE org_invitations SET expires_at = now() - interval '1 second' WHERE id = $1",
            expired.id,
        )
        # Inviting again replaces the open (here: expired) one.
        _first, first_token = await invitations.invite(
            mailer, conn, org.id, email, invited_by=OPERATOR
        )
        second, second_token = await invitations.invite(
            mailer, conn, org.id, email, invited_by=OPERATOR
        )
        assert [i.id for i in await invitations.list_open(conn, org.id)] == [second.id]
        revoked = await invitations.revoke(conn, org.id, second.id, actor=OPERATOR)
        assert revoked.state == "revoked"
        with pytest.raises(errors.InvitationNotFound):
            await invitations.revoke(conn, org.id, second.id, actor=OPERATOR)
        with pytest.raises(errors.InvitationNotFound):
            await invitations.revoke(conn, org.id, "not-a-uuid", actor=OPERATOR)
    for token in (expired_token, first_token, second_token, "x" * 500, "", "forged"):
        async with services.router.enter(app) as conn:
            with pytest.raises(errors.InvitationInvalid) as caught:
                await invitations.accept(conn, mailer.macs, token, user)
            assert caught.value.code == "invitation_invalid"
    async with services.router.enter(app) as conn:
        assert await orgs.membership(conn, org.id, user.id) is None
        bad_calls: list[dict[str, Any]] = [
            {"email": "not an address"},
            {"roles": ["ghost"]},
            {"ttl": 10},
        ]
        for bad in bad_calls:
            with pytest.raises((errors.ValidationFailed, errors.RoleNotFound)):
                await invitations.invite(
                    mailer,
                    conn,
                    org.id,
                    bad.get("email", unique_email()),
                    roles=bad.get("roles"),
                    ttl=bad.get("ttl", invitations.DEFAULT_TTL),
                    invited_by=OPERATOR,
                )


async def test_two_accepts_at_once_exactly_one_wins(
    isolated: Isolated, provision: Callable[..., AppRecord]
) -> None:
    services = isolated.services
    app = provision()
    org, _ = await _org_with_admin(services, app)
    email = unique_email()
    user = await make_user(services, app, email)
    mailer = Mailer(services, app)
    async with services.router.enter(app) as conn:
        _, token = await invitations.invite(
            mailer, conn, org.id, email, roles=["admin"], invited_by=OPERATOR
        )

    async def accept() -> str:
        try:
            async with services.router.enter(app) as conn:
                await invitations.accept(conn, mailer.macs, token, user)
        except errors.InvitationInvalid:
            return "refused"
        return "joined"

    results = await asyncio.gather(*(accept() for _ in range(4)))
    assert sorted(results) == ["joined", "refused", "refused", "refused"]
    async with services.router.enter(app) as conn:
        accepted = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE event = 'org.invitation.accept'"
        )
    assert accepted == 1


async def test_suspended_org_refuses_invites_and_accepts(
    services: Services, provision: Callable[..., AppRecord]
) -> None:
    app = provision()
    org, _ = await _org_with_admin(services, app)
    email = unique_email()
    user = await make_user(services, app, email)
    mailer = Mailer(services, app)
    async with services.router.enter(app) as conn:
        _, token = await invitations.invite(mailer, conn, org.id, email, invited_by=OPERATOR)
        await orgs.suspend(conn, org.id, actor=OPERATOR)
        with pytest.raises(errors.OrgSuspended):
            await invitations.invite(mailer, conn, org.id, unique_email(), invited_by=OPERATOR)
    async with services.router.enter(app) as conn:
        preview = await invitations.peek(conn, mailer.macs, token)
        assert preview is not None
        assert preview.state == "unavailable"
        with pytest.raises(errors.InvitationInvalid):
            await invitations.accept(conn, mailer.macs, token, user)
    async with services.router.enter(app) as conn:
        await orgs.resume(conn, org.id, actor=OPERATOR)
    async with services.router.enter(app) as conn:
        assert (await invitations.accept(conn, mailer.macs, token, user)).roles == ["member"]
        with pytest.raises(errors.AlreadyMember):
            await invitations.invite(mailer, conn, org.id, email, invited_by=OPERATOR)
